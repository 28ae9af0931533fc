"""fsspec helpers: matching, compressed open, rename, delete, URL path arithmetic."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import uuid
import zlib

import pytest
import zstandard

from headrace.io.filesystem import (
    CompressionTypes,
    CorruptFileError,
    FileMetadata,
    delete_recursive,
    dirname,
    join,
    match_files,
    open_for_read,
    open_for_write,
    rename,
)


def test_match_files_sorted_with_sizes_and_no_directories(tmp_path):
    (tmp_path / "b.txt").write_bytes(b"12345")
    (tmp_path / "a.txt").write_bytes(b"1")
    (tmp_path / "dir.txt").mkdir()
    got = match_files(str(tmp_path / "*.txt"))
    assert got == [
        FileMetadata(str(tmp_path / "a.txt"), 1),
        FileMetadata(str(tmp_path / "b.txt"), 5),
    ]
    assert match_files(str(tmp_path / "b.txt")) == [FileMetadata(str(tmp_path / "b.txt"), 5)]


def test_match_files_recursive_glob(tmp_path):
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "x" / "y" / "deep.csv").write_bytes(b"a")
    (tmp_path / "top.csv").write_bytes(b"b")
    got = [m.path for m in match_files(str(tmp_path / "**" / "*.csv"))]
    assert str(tmp_path / "x" / "y" / "deep.csv") in got


def test_match_nothing_names_the_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No files found .*missing-\*\.txt"):
        match_files(str(tmp_path / "missing-*.txt"))
    with pytest.raises(FileNotFoundError, match="plain.txt"):
        match_files(str(tmp_path / "plain.txt"))
    with pytest.raises(FileNotFoundError, match="a directory"):
        (tmp_path / "a directory").mkdir()
        match_files(str(tmp_path / "a directory"))


def test_memory_urls_round_trip():
    base = f"memory://fs-{uuid.uuid4().hex}"
    with open_for_write(f"{base}/x/data.txt") as f:
        f.write(b"hello")
    [meta] = match_files(f"{base}/x/*.txt")
    assert meta.path.startswith("memory://") and meta.size_in_bytes == 5
    with open_for_read(meta.path) as f:
        assert f.read() == b"hello"
    rename(meta.path, f"{base}/y/moved.txt")
    assert [m.path for m in match_files(f"{base}/**")] == [f"memory:///{base[9:]}/y/moved.txt"]
    delete_recursive(f"{base}/y")
    with pytest.raises(FileNotFoundError):
        match_files(f"{base}/y/*")


@pytest.mark.parametrize(
    ("name", "decompress"),
    [
        ("a.gz", gzip.decompress),
        ("a.bz2", bz2.decompress),
        ("a.deflate", zlib.decompress),
        ("a.zst", lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)),
        ("a.xz", lzma.decompress),
        ("a.lzma", lzma.decompress),
        ("a.txt", lambda b: b),
    ],
)
def test_write_compresses_by_extension(tmp_path, name, decompress):
    path = str(tmp_path / "sub" / name)  # parent created on demand
    with open_for_write(path) as f:
        f.write(b"payload " * 100)
    assert decompress((tmp_path / "sub" / name).read_bytes()) == b"payload " * 100
    with open_for_read(path) as f:
        assert f.read() == b"payload " * 100


def test_explicit_compression_type(tmp_path):
    path = str(tmp_path / "noext")
    with open_for_write(path, CompressionTypes.GZIP) as f:
        f.write(b"z")
    assert gzip.decompress((tmp_path / "noext").read_bytes()) == b"z"
    with open_for_read(path, CompressionTypes.GZIP) as f:
        assert f.read() == b"z"


def test_compression_types():
    detect = CompressionTypes.detect_compression_type
    assert detect("x.GZ") == CompressionTypes.GZIP
    assert detect("x.bz2") == CompressionTypes.BZIP2
    assert detect("x.csv") == CompressionTypes.UNCOMPRESSED
    assert CompressionTypes.is_valid_compression_type("auto")
    assert not CompressionTypes.is_valid_compression_type("zip")
    with pytest.raises(ValueError, match="compression_type"):
        CompressionTypes.resolve("zip", "x")


def test_rename_replaces_existing(tmp_path):
    (tmp_path / "a").write_bytes(b"new")
    (tmp_path / "b").write_bytes(b"old")
    rename(str(tmp_path / "a"), str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"new"
    assert not (tmp_path / "a").exists()


def test_delete_recursive_is_quiet_when_missing(tmp_path):
    delete_recursive(str(tmp_path / "nope"))
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f").write_bytes(b"x")
    delete_recursive(str(tmp_path / "d"))
    assert not (tmp_path / "d").exists()


def test_dirname_and_join():
    assert dirname("s3://bucket/out/part") == "s3://bucket/out"
    assert dirname("memory://m/out/part") == "memory://m/out"
    assert dirname("/tmp/out/part") == "/tmp/out"
    assert join("s3://bucket/out/", "f") == "s3://bucket/out/f"
    assert dirname("relative-prefix") == os.getcwd()


def test_beam_compression_types_are_detected_and_read_as_beam_writes_them(tmp_path):
    """Beam's ``io/filesystem.py``: AUTO maps .deflate/.zst/.zstd/.xz/.lzma besides .gz/.bz2
    (and nothing else: ``.gzip`` is uncompressed); DEFLATE is a zlib stream, several streams may
    follow each other; the names are importable from ``beam.io.filesystem``."""
    from headrace.beam.io.filesystem import CompressionTypes as BeamCompressionTypes

    assert BeamCompressionTypes is CompressionTypes
    detect = CompressionTypes.detect_compression_type
    assert detect("x.DEFLATE") == CompressionTypes.DEFLATE == "deflate"
    assert detect("x.zstd") == detect("x.zst") == CompressionTypes.ZSTD
    assert detect("x.xz") == detect("x.lzma") == CompressionTypes.LZMA
    assert detect("x.gzip") == CompressionTypes.UNCOMPRESSED
    assert CompressionTypes.mime_type(CompressionTypes.DEFLATE) == "application/x-deflate"
    p = tmp_path / "two.deflate"
    p.write_bytes(zlib.compress(b"a\nb\n") + zlib.compress(b"c\n"))
    with open_for_read(str(p)) as f:
        assert f.read() == b"a\nb\nc\n"
    (tmp_path / "empty.deflate").write_bytes(b"")
    with open_for_read(str(tmp_path / "empty.deflate")) as f:
        assert f.read() == b""
    (tmp_path / "cut.deflate").write_bytes(zlib.compress(b"x" * 1000)[:-6])
    with pytest.raises(CorruptFileError, match="cut.deflate"):
        with open_for_read(str(tmp_path / "cut.deflate")) as f:
            f.read()


def test_read_from_text_with_every_compression(tmp_path):
    import headrace.beam as beam
    from headrace.testing.util import assert_that, equal_to

    for suffix in ("deflate", "zst", "xz"):
        path = str(tmp_path / f"in.txt.{suffix}")
        with open_for_write(path) as f:
            f.write(b"one\ntwo\n")
    with beam.Pipeline() as p:
        lines = p | beam.io.ReadFromText(str(tmp_path / "in.txt.*"))
        assert_that(lines, equal_to(["one", "two"] * 3))
    with beam.Pipeline() as p:
        lines = p | beam.io.ReadFromText(
            str(tmp_path / "in.txt.deflate"), compression_type=CompressionTypes.DEFLATE
        )
        assert_that(lines, equal_to(["one", "two"]))
