"""``aicache learn``: study the episodes offline and propose better settings as git branches.

``labelled`` gathers what is known to be right or wrong (labels from feedback, ``--refresh`` and shadow checks,
plus labelled pair files), ``calibrate`` chooses the hit decision's operating point with a bound on wrong answers
and checks it on newer data than it was fitted on, ``search`` replays candidate index settings, ``run`` puts the
findings together, and ``proposals`` turns them into a branch the user reviews. Nothing here is imported by the
ask path, and nothing here sends data anywhere.
"""
