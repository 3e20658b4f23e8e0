"""Offline learning from episodes, and the git repositories its proposals live in.

Nothing here is imported by the ask path except ``settings_repo.learned_settings``, which ``config.load`` calls:
that module reads a file from a plain path and imports no git, so importing this package must stay as cheap.
"""
