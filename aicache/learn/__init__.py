"""``aicache learn``: study the episodes offline and propose better settings as git branches.

``labelled`` gathers what is known to be right or wrong (labels from feedback, ``--refresh`` and shadow checks,
plus labelled pair files), ``calibrate`` chooses the hit decision's operating point with a bound on wrong answers
and checks it on newer data than it was fitted on, ``search`` replays candidate index settings, ``run`` puts the
findings together, ``proposals`` turns them into a branch the user reviews (in a repository ``settings_repo``
finds), and ``report`` draws the evidence as a page. Nothing here sends data anywhere.

Nothing here is imported by the ask path except ``settings_repo.learned_settings``, which ``config.load`` calls:
that module reads a file from a plain path and imports no git, so importing this package must stay cheap.
"""
