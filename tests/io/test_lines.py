"""The text source: fast line reading, byte-range splitting, compression, header skipping."""

from __future__ import annotations

import bz2
import gzip
import pickle
import uuid

import cloudpickle
import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.io.filebasedsource import FileRange
from headrace.io.filesystem import CompressionTypes, CorruptFileError
from headrace.io.lines import TextSource, header_end, iter_chunks
from headrace.model.coders import BytesCoder, StrUtf8Coder


def _mem_file(data: bytes, suffix: str = ".txt") -> str:
    path = f"memory://lines-{uuid.uuid4().hex}/f{suffix}"
    with fsspec.open(path, "wb") as f:
        f.write(data)
    return path


def _read_tiled(source: TextSource, path: str, size: int, cuts: list[int]) -> list:
    bounds = [0, *sorted({c for c in cuts if 0 < c < size}), size]
    out = []
    for lo, hi in zip(bounds, bounds[1:]):
        out.extend(source.read_range(FileRange(path, lo, hi, hi - lo)))
    return out


def test_read_lines_strips_lf_and_crlf(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"one\ntwo\r\n\nthree\rx\nlast")
    assert list(TextSource(str(p)).read()) == ["one", "two", "", "three\rx", "last"]


def test_trailing_newline_makes_no_empty_record(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"a\nb\n")
    assert list(TextSource(str(p)).read()) == ["a", "b"]
    p.write_bytes(b"a\n\n")
    assert list(TextSource(str(p)).read()) == ["a", ""]
    p.write_bytes(b"")
    assert list(TextSource(str(p)).read()) == []


def test_keep_trailing_newlines(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"a\r\nb\nc")
    src = TextSource(str(p), strip_trailing_newlines=False)
    assert list(src.read()) == ["a\r\n", "b\n", "c"]


def test_many_files_in_path_order(tmp_path):
    for name, body in [("b.txt", b"3\n4\n"), ("a.txt", b"1\n2\n"), ("c.log", b"x\n")]:
        (tmp_path / name).write_bytes(body)
    src = TextSource(str(tmp_path / "*.txt"))
    assert list(src.read()) == ["1", "2", "3", "4"]
    assert src.estimate_size() == 8
    parts = src.split(2)
    assert len(parts) == 2
    assert [list(s.read()) for s in parts] == [["1", "2"], ["3", "4"]]


def test_missing_file_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "nothing-*.txt")
    with pytest.raises(FileNotFoundError, match="nothing-"):
        TextSource(pattern)
    src = TextSource(pattern, validate=False)
    with pytest.raises(FileNotFoundError, match="nothing-"):
        list(src.read())


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".bz2", bz2.compress)])
def test_compressed_files_by_extension(tmp_path, suffix, compress):
    body = b"".join(b"line %d\n" % i for i in range(1000))
    p = tmp_path / f"a.txt{suffix}"
    p.write_bytes(compress(body))
    src = TextSource(str(p))
    expected = [f"line {i}" for i in range(1000)]
    assert list(src.read()) == expected
    parts = src.split(10)  # a compressed file is not splittable
    assert len(parts) == 1
    assert list(parts[0].read()) == expected


def test_explicit_compression_type_overrides_extension(tmp_path):
    p = tmp_path / "a.data"
    p.write_bytes(gzip.compress(b"x\ny\n"))
    assert list(TextSource(str(p), compression_type=CompressionTypes.GZIP).read()) == ["x", "y"]
    q = tmp_path / "plain.gz"
    q.write_bytes(b"x\n")
    src = TextSource(str(q), compression_type=CompressionTypes.UNCOMPRESSED)
    assert list(src.read()) == ["x"]


def test_unknown_compression_type_is_rejected(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"x")
    with pytest.raises(ValueError, match="compression_type"):
        TextSource(str(tmp_path / "a.txt"), compression_type="zip")


def test_corrupt_gzip_names_the_file(tmp_path):
    p = tmp_path / "broken.txt.gz"
    p.write_bytes(gzip.compress(b"hello\n" * 1000)[:-30] + b"garbage-garbage-garbage")
    with pytest.raises(CorruptFileError, match="broken.txt.gz"):
        list(TextSource(str(p)).read())
    q = tmp_path / "notgzip.gz"
    q.write_bytes(b"plain text\n")
    with pytest.raises(CorruptFileError, match="notgzip.gz"):
        list(TextSource(str(q)).read())


def test_skip_header_lines_every_file(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"h1\nh2\n1\n2\n")
    (tmp_path / "b.csv").write_bytes(b"h1\nh2\n3\n")
    (tmp_path / "c.csv").write_bytes(b"h1\n")
    src = TextSource(str(tmp_path / "*.csv"), skip_header_lines=2)
    assert list(src.read()) == ["1", "2", "3"]


def test_skip_header_lines_compressed(tmp_path):
    (tmp_path / "a.gz").write_bytes(gzip.compress(b"h\n1\n2\n"))
    assert list(TextSource(str(tmp_path / "a.gz"), skip_header_lines=1).read()) == ["1", "2"]


def test_skip_header_lines_with_ranges_inside_the_header():
    body = b"header-one\nheader-two\n" + b"".join(b"%d\n" % i for i in range(50))
    path = _mem_file(body)
    src = TextSource(path, skip_header_lines=2)
    expected = [str(i) for i in range(50)]
    for cuts in ([3], [3, 11, 12, 25], list(range(1, len(body), 2))):
        assert _read_tiled(src, path, len(body), cuts) == expected


def test_negative_skip_header_lines_rejected(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"x")
    with pytest.raises(ValueError, match="skip_header_lines"):
        TextSource(str(tmp_path / "a.txt"), skip_header_lines=-1)


def test_memory_filesystem_paths_and_globs():
    base = f"memory://lines-{uuid.uuid4().hex}"
    for i in range(3):
        with fsspec.open(f"{base}/part-{i}.txt", "wb") as f:
            f.write(b"r%d\n" % i)
    src = TextSource(f"{base}/part-*.txt")
    assert list(src.read()) == ["r0", "r1", "r2"]
    assert sorted(x for s in src.split(3) for x in s.read()) == ["r0", "r1", "r2"]


def test_custom_delimiter_and_coder(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"a||bb||||c")
    assert list(TextSource(str(p), delimiter=b"||").read()) == ["a", "bb", "", "c"]
    got = list(TextSource(str(p), delimiter=b"||", coder=BytesCoder()).read())
    assert got == [b"a", b"bb", b"", b"c"]
    kept = TextSource(str(p), delimiter=b"||", strip_trailing_newlines=False)
    assert list(kept.read()) == ["a||", "bb||", "||", "c"]


def test_str_utf8_coder_reads_like_the_default(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("é\r\nü\n".encode())
    assert list(TextSource(str(p), coder=StrUtf8Coder()).read()) == ["é", "ü"]
    assert list(TextSource(str(p)).read()) == ["é", "ü"]
    assert list(TextSource(str(p), coder=BytesCoder()).read()) == ["é".encode(), "ü".encode()]


def test_invalid_utf8_names_the_file(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt.*coder"):
        list(TextSource(str(p)).read())


def test_with_filename(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"x\ny\n")
    got = list(TextSource(str(p), with_filename=True).read())
    assert got == [(str(p), "x"), (str(p), "y")]


def test_sources_pickle(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"x\ny\n")
    src = TextSource(str(p), skip_header_lines=1)
    for part in [src, *src.split(2)]:
        for dumps, loads in [(pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)]:
            assert list(loads(dumps(part)).read()) == list(part.read())


def test_display_data(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"x\n")
    assert TextSource(str(p), skip_header_lines=1).display_data() == {
        "file_pattern": str(p),
        "skip_header_lines": 1,
    }


def test_min_bundle_size_limits_splitting():
    body = b"".join(b"%05d\n" % i for i in range(1000))
    path = _mem_file(body)
    assert len(TextSource(path).split(10)) == 10
    assert len(TextSource(path, min_bundle_size=len(body)).split(10)) == 1


def test_header_end_offsets():
    path = _mem_file(b"ab\ncd\nef")
    with fsspec.open(path, "rb") as f:
        assert [header_end(f, n, b"\n") for n in (1, 2, 3, 9)] == [3, 6, 8, 8]
    path = _mem_file(b"ab||cd||")
    with fsspec.open(path, "rb") as f:
        assert [header_end(f, n, b"||") for n in (1, 2, 3)] == [4, 8, 8]


def test_iter_chunks_long_line_across_blocks(monkeypatch):
    import headrace.io.lines as lines

    monkeypatch.setattr(lines, "BLOCK_SIZE", 7)
    monkeypatch.setattr(lines, "_MIN_READ", 5)
    body = b"short\n" + b"x" * 100 + b"\nend\n"
    path = _mem_file(body)
    with fsspec.open(path, "rb") as f:
        assert b"".join(iter_chunks(f, 0, None, b"\n", True)) == body
    src = TextSource(path)
    expected = ["short", "x" * 100, "end"]
    for cuts in ([1], [6], [7], [50, 106], [107], list(range(1, len(body), 3))):
        assert _read_tiled(src, path, len(body), cuts) == expected


# A line may hold a lone ``\r`` but not end with one (``x\r`` + ``\n`` reads as ``x``).
_line = st.text(alphabet=st.sampled_from("ab\ré|,"), max_size=12).filter(
    lambda s: not s.endswith("\r")
)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(_line, max_size=30),
    endings=st.lists(st.sampled_from(["\n", "\r\n"]), min_size=30, max_size=30),
    final_newline=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    skip=st.integers(min_value=0, max_value=3),
)
def test_byte_ranges_read_every_line_once(lines, endings, final_newline, cuts, skip):
    text = "".join(line + end for line, end in zip(lines, endings))
    if lines and not final_newline:
        text = text[: -len(endings[len(lines) - 1])]
    body = text.encode()
    path = _mem_file(body)
    expected = list(lines)
    if lines and not final_newline and lines[-1] == "":
        expected.pop()  # an empty last line without a newline is no line at all
    expected = expected[skip:]
    src = TextSource(path, skip_header_lines=skip)
    assert list(src.read()) == expected
    assert _read_tiled(src, path, len(body), cuts) == expected
    for n in (1, 2, 3, 5, 8, 13, 50):
        assert [x for part in src.split(n) for x in part.read()] == expected


@settings(max_examples=100, deadline=None)
@given(
    records=st.lists(st.binary(max_size=6).filter(lambda b: b"<>" not in b), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=10),
)
def test_byte_ranges_with_multibyte_delimiter(records, cuts):
    # ``<>`` cannot overlap itself, so records holding a lone ``<`` or ``>`` split unambiguously.
    body = b"".join(r + b"<>" for r in records)
    path = _mem_file(body)
    src = TextSource(path, delimiter=b"<>", coder=BytesCoder())
    assert list(src.read()) == records
    assert _read_tiled(src, path, len(body), cuts) == records


def test_reading_10_mb_reads_every_line(tmp_path):
    """The speed of this read is measured by benchmarks/bench_wordcount.py, not here."""
    p = tmp_path / "big.txt"
    line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
    count = 10_000_000 // len(line)
    p.write_bytes(line * count)
    src = TextSource(str(p))
    lines = list(src.read())
    assert len(lines) == count
    assert lines[0] == lines[-1] == line.decode().rstrip("\n")


@settings(max_examples=60, deadline=None)
@given(
    line_counts=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=6),
    desired=st.integers(min_value=1, max_value=12),
    min_bundle=st.sampled_from([0, 10, 1000]),
)
def test_split_gives_at_most_desired_contiguous_parts(line_counts, desired, min_bundle):
    base = f"memory://lines-{uuid.uuid4().hex}"
    expected = []
    for i, count in enumerate(line_counts):
        lines = [f"{i}-{j}" for j in range(count)]
        expected.extend(lines)
        with fsspec.open(f"{base}/f{i}.txt", "wb") as f:
            f.write("".join(line + "\n" for line in lines).encode())
    src = TextSource(f"{base}/*.txt", min_bundle_size=min_bundle)
    parts = src.split(desired)
    assert 1 <= len(parts) <= desired
    assert [x for part in parts for x in part.read()] == expected
    assert sum(part.estimate_size() for part in parts) == src.estimate_size()
