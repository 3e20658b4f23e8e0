"""The semantic tier: questions that mean the same as a stored one.

``tier`` is the entry point the ask flow uses (lookup, and the writers that keep the vector index in step);
``embeddings`` turns questions into vectors, ``index`` finds the nearest stored ones, ``verify`` and
``lexicon`` judge a candidate pair, ``judge`` asks an LLM about the gray zone, ``evaluate`` measures all of it
on labelled pairs. Nothing here is imported on the exact-hit path.
"""
