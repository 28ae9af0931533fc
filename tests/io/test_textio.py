"""The Beam-named transforms: argument checking and the text sink's output format."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

import headrace.io as hio
from headrace.io import (
    CompressionTypes,
    ReadAllFromText,
    ReadFromCsv,
    ReadFromJson,
    ReadFromText,
    WriteToCsv,
    WriteToJson,
    WriteToText,
)
from headrace.model.coders import ToStringCoder


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "in.txt"
    p.write_bytes(b"a\nb\n")
    return str(p)


def test_public_names():
    for name in [
        "ReadFromText",
        "WriteToText",
        "ReadFromCsv",
        "ReadFromJson",
        "WriteToJson",
        "ReadFromParquet",
        "WriteToParquet",
        "ReadFromAvro",
        "WriteToAvro",
        "CompressionTypes",
    ]:
        assert name in hio.__all__ and hasattr(hio, name)
    assert CompressionTypes.GZIP == "gzip"


def test_read_from_text_arguments(text_file):
    with pytest.raises(ValueError, match="file_pattern"):
        ReadFromText()
    with pytest.raises(NotImplementedError, match="escapechar"):
        ReadFromText(text_file, escapechar=b"\\")
    with pytest.raises(NotImplementedError, match="bogus"):
        ReadFromText(text_file, bogus=1)
    with pytest.raises(FileNotFoundError, match="missing"):
        ReadFromText(text_file + ".missing")
    ReadFromText(text_file + ".missing", validate=False)  # checked when read instead
    t = ReadFromText(text_file, label="MyRead")
    assert t.label == "MyRead"
    # Beam's positional order.
    t = ReadFromText(text_file, 0, CompressionTypes.UNCOMPRESSED, False, None, True, 1)
    assert list(t._source.read()) == ["b\n"]


def test_write_to_text_arguments(tmp_path):
    with pytest.raises(NotImplementedError, match="max_records_per_shard"):
        WriteToText(str(tmp_path / "o"), max_records_per_shard=10)
    with pytest.raises(NotImplementedError, match="max_bytes_per_shard"):
        WriteToText(str(tmp_path / "o"), max_bytes_per_shard=10)
    t = WriteToText(str(tmp_path / "o"), ".txt", False, 3, "-SS", None, "auto", "h", "f")
    sink = t._sink
    assert (sink.file_name_suffix, sink.append_trailing_newlines, sink.num_shards) == (
        ".txt",
        False,
        3,
    )
    assert sink.final_path(1, 3) == str(tmp_path / "o-01.txt")


def test_text_sink_output_format(tmp_path, run_sink):
    sink = WriteToText(
        str(tmp_path / "o"), shard_name_template="", header="head", footer="foot"
    )._sink
    run_sink(sink, [["é", b"raw", 3, None]])
    assert (tmp_path / "o").read_bytes() == "head\né\nraw\n3\nNone\nfoot\n".encode()

    sink = WriteToText(str(tmp_path / "n"), shard_name_template="", append_trailing_newlines=False)
    run_sink(sink._sink, [["a", "b"]])
    assert (tmp_path / "n").read_bytes() == b"ab"

    sink = WriteToText(str(tmp_path / "c"), shard_name_template="", coder=ToStringCoder())
    run_sink(sink._sink, [[1, "x"]])
    assert (tmp_path / "c").read_bytes() == b"1\nx\n"


def test_text_sink_flushes_large_outputs(tmp_path, run_sink):
    sink = WriteToText(str(tmp_path / "big"), shard_name_template="")._sink
    run_sink(sink, [[f"line {i}" for i in range(20_000)]])
    lines = (tmp_path / "big").read_text().splitlines()
    assert lines == [f"line {i}" for i in range(20_000)]


def test_bad_coder_is_rejected(tmp_path, text_file):
    with pytest.raises(TypeError, match="coder"):
        WriteToText(str(tmp_path / "o"), coder=object())
    with pytest.raises(TypeError, match="coder"):
        ReadFromText(text_file, coder=object())


def test_read_all_from_text_arguments():
    with pytest.raises(NotImplementedError, match="escapechar"):
        ReadAllFromText(escapechar=b"x")
    with pytest.raises(NotImplementedError, match="nope"):
        ReadAllFromText(nope=True)


def test_csv_json_arguments(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b"a\n1\n")
    with pytest.raises(NotImplementedError, match="nrows"):
        ReadFromCsv(str(p), nrows=3)
    with pytest.raises(NotImplementedError, match="compression='zip'"):
        ReadFromCsv(str(p), compression="zip")
    with pytest.raises(ValueError, match="sep or delimiter"):
        ReadFromCsv(str(p), sep=",", delimiter=";")
    assert ReadFromCsv(str(p), delimiter=";")._source.dialect["delimiter"] == ";"
    assert ReadFromCsv(str(p), header="infer", names=["x"])._source.header is None
    with pytest.raises(NotImplementedError, match="orient"):
        ReadFromJson(str(p), orient="split")
    with pytest.raises(NotImplementedError, match="dtype"):
        ReadFromJson(str(p), dtype={"a": int})
    with pytest.raises(NotImplementedError, match="orient"):
        WriteToJson(str(tmp_path / "o"), orient="table")
    with pytest.raises(NotImplementedError, match="file_naming"):
        WriteToJson(str(tmp_path / "o"), file_naming=lambda *a: "x")
    with pytest.raises(NotImplementedError, match="date_format"):
        WriteToJson(str(tmp_path / "o"), date_format="iso")
    with pytest.raises(NotImplementedError, match="float_format"):
        WriteToCsv(str(tmp_path / "o"), float_format="%.2f")
    w = WriteToCsv(str(tmp_path / "o"), num_shards=2, sep=";", index=False)
    assert (w._sink.num_shards, w._sink.dialect["delimiter"]) == (2, ";")
    j = WriteToJson(str(tmp_path / "o"), compression="gzip", file_name_suffix=".jsonl.gz")
    assert j._sink.compression_type == CompressionTypes.GZIP


def test_transforms_pickle(tmp_path, text_file):
    p = tmp_path / "a.csv"
    p.write_bytes(b"a\n1\n")
    transforms = [
        ReadFromText(text_file),
        WriteToText(str(tmp_path / "o")),
        ReadFromCsv(str(p)),
        ReadFromJson(str(p)),
        WriteToJson(str(tmp_path / "o")),
        WriteToCsv(str(tmp_path / "o")),
        ReadAllFromText(),
    ]
    for t in transforms:
        for dumps in (pickle.dumps, cloudpickle.dumps):
            assert type(pickle.loads(dumps(t))) is type(t)


def test_read_all_from_text_skips_patterns_matching_nothing_as_beam(tmp_path, text_file):
    """Beam's ReadAllFromText expands each pattern with ``FileSystems.match`` (an empty list for a
    missing file or an empty glob) and reads nothing for it; checked on Beam 2.77. headrace
    raised. ``empty_match_treatment`` (Beam's ``fileio.EmptyMatchTreatment``) makes it fail."""
    import headrace.beam as beam
    from headrace.beam.io.fileio import EmptyMatchTreatment
    from headrace.testing.util import assert_that, equal_to

    missing = [str(tmp_path / "nope.txt"), str(tmp_path / "nope*.txt")]
    with beam.Pipeline() as p:
        lines = p | beam.Create([*missing, text_file]) | ReadAllFromText(with_filename=True)
        assert_that(lines, equal_to([(text_file, "a"), (text_file, "b")]))
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        with beam.Pipeline() as p:
            _ = (
                p
                | beam.Create(missing[:1])
                | ReadAllFromText(empty_match_treatment=EmptyMatchTreatment.ALLOW_IF_WILDCARD)
            )
    with beam.Pipeline() as p:
        lines = (
            p
            | beam.Create(missing[1:])
            | ReadAllFromText(empty_match_treatment=EmptyMatchTreatment.ALLOW_IF_WILDCARD)
        )
        assert_that(lines, equal_to([]))
    with pytest.raises(ValueError, match="empty match treatment"):
        ReadAllFromText(empty_match_treatment="SOMETIMES")


def test_read_all_from_text_continuously_reads_the_matched_files(tmp_path):
    """Beam's ``ReadAllFromTextContinuously`` (textio.py): MatchContinuously's arguments plus
    ReadAllFromText's; here the watch stops after a second, having read the file once."""
    import headrace.beam as beam
    from headrace.model.timestamp import Timestamp
    from headrace.testing.util import assert_that, equal_to

    (tmp_path / "file1").write_text("first\n")
    with beam.Pipeline() as p:
        lines = p | hio.textio.ReadAllFromTextContinuously(
            str(tmp_path / "*"),
            with_filename=True,
            interval=0.2,
            stop_timestamp=Timestamp.now() + 1,
            match_updated_files=False,
        )
        assert_that(
            lines | beam.MapTuple(lambda path, line: (path.rsplit("/", 1)[-1], line)),
            equal_to([("file1", "first")]),
        )
