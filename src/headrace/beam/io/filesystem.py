"""``apache_beam.io.filesystem`` (the names user code imports from it)."""

from headrace.io.filesystem import CompressionTypes, FileMetadata

__all__ = ["CompressionTypes", "FileMetadata"]
