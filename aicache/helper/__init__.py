"""The warm helper: one background process per store that keeps aicache loaded, so `aicache ask` does not pay
for starting Python's libraries, the embedding model and an HTTPS context on every run.

Why: a cold `aicache ask` spends most of its time importing (Typer ~60 ms, httpx ~80 ms, onnxruntime, numpy and
tokenizers ~140 ms) and loading the ONNX session (~130 ms), not working (~13 ms for an exact hit). No amount of
trimming gets a cold semantic hit under 400 ms or a miss within 60 ms of the provider's own time.

How (the fork-server pattern of Bazel's and Gradle's daemons, and of multiprocessing's forkserver):

* ``launch`` (the ``aicache`` console script) is stdlib-only. For ``ask`` it connects to the helper's Unix
  socket and hands over its own stdin, stdout, stderr and working directory as file descriptors, with its
  argv, environment and umask. Pipes, terminals, ``isatty`` and colours therefore behave exactly as in-process.
* ``server`` holds the imports, the embedding session (one thread, so forking is safe) and the verifier's
  word lists. For each request it forks; the child takes the client's descriptors, environment and directory
  and runs the ordinary CLI, then reports the exit code. Commands open the store only in the children; the
  server itself only reads it, to hold a large store's vector index for them (``semantic.keep_index_warm``),
  with a read-only connection it closes before forking again.
* The client forwards SIGINT/SIGTERM/SIGHUP to the child and exits with its code. When no helper answers (not
  running, disabled, a different aicache version, stuck: not taking the command within half a second), the
  command runs in-process, exactly as without a helper,
  and a helper is started in the background for the next run. ``AICACHE_HELPER=0`` or ``helper.enabled =
  false`` turns it off; it exits by itself after ``helper.idle_minutes`` without requests.

``wire`` is what both sides agree on; nothing in this package but ``server`` imports beyond the stdlib.
"""
