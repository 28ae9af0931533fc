"""``apache_beam.io.filesystems``."""

from headrace.io.filesystems import BeamIOError, FileSystems, MatchResult

__all__ = ["BeamIOError", "FileSystems", "MatchResult"]
