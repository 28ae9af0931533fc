"""CSV and JSON: typed Rows out of files, records into files."""

from __future__ import annotations

import gzip
import json
import pickle
import uuid

import cloudpickle
import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.io.filebasedsource import FileRange
from headrace.io.tabular import (
    CsvSink,
    CsvSource,
    JsonSink,
    JsonSource,
    record_to_dict,
)
from headrace.model.row import Row


def _read_all(source) -> list:
    return list(source.read())


def _mem(data: bytes, name: str = "f.csv") -> str:
    path = f"memory://tab-{uuid.uuid4().hex}/{name}"
    with fsspec.open(path, "wb") as f:
        f.write(data)
    return path


def test_csv_header_typed_rows(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b'id,name,score,note\n1,"Smith, J",9.5,\n2,Lee,7,"say ""hi"""\n')
    assert _read_all(CsvSource(str(p))) == [
        Row(id=1, name="Smith, J", score=9.5, note=None),
        Row(id=2, name="Lee", score=7, note='say "hi"'),
    ]


def test_csv_names_header_none_and_sep(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_bytes(b"1\tx\n2\ty\n")
    src = CsvSource(str(p), sep="\t", header=None, names=["n", "s"])
    assert _read_all(src) == [Row(n=1, s="x"), Row(n=2, s="y")]
    with pytest.raises(ValueError, match="names"):
        CsvSource(str(p), header=None)
    with pytest.raises(NotImplementedError, match="header"):
        CsvSource(str(p), header=2)


def test_csv_names_replace_the_header_row(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b"a,b\n1,2\n")
    assert _read_all(CsvSource(str(p), names=["x", "y"])) == [Row(x=1, y=2)]


def test_csv_usecols_dtype_and_na(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b"zip,city,pop\n01234,Ames,\n99999,,5\n")
    src = CsvSource(str(p), usecols=["pop", "zip"], dtype={"zip": str})
    assert _read_all(src) == [Row(zip="01234", pop=None), Row(zip="99999", pop=5)]
    assert _read_all(CsvSource(str(p), usecols=[1])) == [Row(city="Ames"), Row(city=None)]
    raw = CsvSource(str(p), dtype=str, keep_default_na=False)
    assert _read_all(raw)[1] == Row(zip="99999", city="", pop="5")
    floats = CsvSource(str(p), usecols=["pop"], dtype=float)
    assert _read_all(floats) == [Row(pop=None), Row(pop=5.0)]
    with pytest.raises(ValueError, match="nope"):
        _read_all(CsvSource(str(p), usecols=["nope"]))


def test_csv_short_rows_padded_long_rows_rejected(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b"a,b,c\n1\n\n2,3\n")
    assert list(CsvSource(str(p)).read()) == [Row(a=1, b=None, c=None), Row(a=2, b=3.0, c=None)]
    p.write_bytes(b"a,b,c\n1\n\n1,2,3,4\n")
    with pytest.raises(ValueError, match=r"a.csv.*4 fields.*3 columns"):
        list(CsvSource(str(p)).read())


def test_csv_duplicate_columns_renamed_like_pandas(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b"a,a,b,a\n1,2,3,4\n")
    assert _read_all(CsvSource(str(p)))[0]._asdict() == {"a": 1, "a.1": 2, "b": 3, "a.2": 4}


def test_csv_skiprows_and_gzip(tmp_path):
    p = tmp_path / "a.csv.gz"
    p.write_bytes(gzip.compress(b"# generated\nk,v\nx,1\n"))
    assert _read_all(CsvSource(str(p), skiprows=1)) == [Row(k="x", v=1)]


def test_csv_multiline_fields_need_splittable_false(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b'k,text\n1,"two\nlines"\n2,plain\n')
    src = CsvSource(str(p), splittable=False)
    assert _read_all(src) == [Row(k=1, text="two\nlines"), Row(k=2, text="plain")]
    assert len(src.split(4)) == 1


def test_csv_encoding(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes("name\ncafé\n".encode("latin-1"))
    assert _read_all(CsvSource(str(p), encoding="latin-1")) == [Row(name="café")]


def test_csv_header_read_for_every_split(tmp_path):
    body = b"n,sq\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(200))
    (tmp_path / "a.csv").write_bytes(body)
    (tmp_path / "b.csv").write_bytes(b"n,sq\n-1,1\n")
    src = CsvSource(str(tmp_path / "*.csv"))
    expected = [Row(n=i, sq=i * i) for i in range(200)] + [Row(n=-1, sq=1)]
    for n in (1, 2, 5, 17):
        parts = src.split(n)
        assert [r for part in parts for r in part.read()] == expected


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.tuples(st.integers(-999, 999), st.text("ab ,\"'", max_size=5)), max_size=25),
    cuts=st.lists(st.integers(min_value=0, max_value=500), max_size=8),
)
def test_csv_byte_ranges_read_every_row_once(values, cuts):
    sink_path = f"memory://tab-{uuid.uuid4().hex}/w"
    writer = CsvSink(sink_path).open_writer(sink_path + ".csv")
    for i, s in values:
        writer.write({"i": i, "s": s})
    writer.close()
    path = sink_path + ".csv"
    if not values:
        return
    with fsspec.open(path, "rb") as f:
        size = len(f.read())
    src = CsvSource(path, dtype={"s": str}, keep_default_na=False)
    bounds = [0, *sorted({c for c in cuts if 0 < c < size}), size]
    got = []
    for lo, hi in zip(bounds, bounds[1:]):
        got.extend(src.read_range(FileRange(path, lo, hi, hi - lo)))
    assert got == [Row(i=i, s=s) for i, s in values]


def test_json_lines(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"a": 1, "b": {"c": [1, 2]}}\n\n{"a": null, "b": "\\u00e9"}\r\n')
    assert _read_all(JsonSource(str(p))) == [Row(a=1, b={"c": [1, 2]}), Row(a=None, b="é")]


def test_json_lines_errors_name_the_file(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": \n')
    with pytest.raises(ValueError, match=r"bad.jsonl.*\{\"a\": "):
        _read_all(JsonSource(str(p)))
    p.write_bytes(b"[1, 2]\n")
    with pytest.raises(ValueError, match="bad.jsonl.*not a JSON object"):
        _read_all(JsonSource(str(p)))


def test_json_array_files(tmp_path):
    p = tmp_path / "a.json"
    p.write_bytes(b'[{"a": 1}, {"a": 2}]')
    assert _read_all(JsonSource(str(p), lines=False)) == [Row(a=1), Row(a=2)]
    p.write_bytes(b'{"a": 1}')
    with pytest.raises(ValueError, match="array of objects"):
        _read_all(JsonSource(str(p), lines=False))
    p.write_bytes(b"[{")
    with pytest.raises(ValueError, match="a.json.*not valid JSON"):
        _read_all(JsonSource(str(p), lines=False))


def test_json_splits_cover_all_lines():
    body = b"".join(json.dumps({"i": i}).encode() + b"\n" for i in range(300))
    path = _mem(body, "x.jsonl")
    src = JsonSource(path)
    for n in (1, 3, 10):
        assert [r.i for part in src.split(n) for r in part.read()] == list(range(300))


def test_record_to_dict():
    from collections import namedtuple

    Point = namedtuple("Point", "x y")
    assert record_to_dict({"a": 1}) == {"a": 1}
    assert record_to_dict(Row(a=1)) == {"a": 1}
    assert record_to_dict(Point(1, 2)) == {"x": 1, "y": 2}
    with pytest.raises(TypeError, match="int"):
        record_to_dict(3)


def _write(sink, values, name="out"):
    path = sink.file_path_prefix + "-" + name
    writer = sink.open_writer(path)
    for v in values:
        writer.write(v)
    writer.close()
    with fsspec.open(path, "rb") as f:
        return f.read()


def test_json_sink_like_pandas_records_lines():
    sink = JsonSink(f"memory://tab-{uuid.uuid4().hex}/j")
    data = _write(sink, [{"a": 1, "b": "é"}, Row(a=2, b=Row(c=None))])
    assert data == b'{"a":1,"b":"\\u00e9"}\n{"a":2,"b":{"c":null}}\n'
    sink = JsonSink(f"memory://tab-{uuid.uuid4().hex}/j", force_ascii=False, lines=False)
    assert json.loads(_write(sink, [{"a": "é"}, {"a": 2}])) == [{"a": "é"}, {"a": 2}]
    assert _write(sink, []) == b"[]"


def test_json_sink_errors_show_prefix_and_record():
    sink = JsonSink(f"memory://tab-{uuid.uuid4().hex}/jerr")
    writer = sink.open_writer(sink.file_path_prefix + "-x")
    with pytest.raises(ValueError, match=r"WriteToJson to .*jerr.*\{'a': \{1, 2\}\}"):
        writer.write({"a": {1, 2}})
    with pytest.raises(ValueError, match="WriteToJson.*cannot write record 5"):
        writer.write(5)
    handled = JsonSink(f"memory://tab-{uuid.uuid4().hex}/h", default_handler=sorted)
    assert _write(handled, [{"a": {2, 1}}]) == b'{"a":[1,2]}\n'


def test_csv_sink_header_columns_and_quoting():
    sink = CsvSink(f"memory://tab-{uuid.uuid4().hex}/c")
    data = _write(sink, [{"a": 1, "b": "x,y"}, Row(a=None, b='q"')])
    assert data == b'a,b\n1,"x,y"\n,"q"""\n'
    sink = CsvSink(f"memory://tab-{uuid.uuid4().hex}/c", sep=";", columns=["b"], na_rep="NA")
    assert _write(sink, [{"a": 1, "b": None}]) == b"b\nNA\n"
    assert _write(sink, [], "empty") == b"b\n"
    no_header = CsvSink(f"memory://tab-{uuid.uuid4().hex}/c", header=False)
    assert _write(no_header, [{"a": 1}]) == b"1\n"


def test_csv_sink_missing_column_names_record():
    sink = CsvSink(f"memory://tab-{uuid.uuid4().hex}/miss")
    writer = sink.open_writer(sink.file_path_prefix + "-x")
    writer.write({"a": 1, "b": 2})
    with pytest.raises(ValueError, match=r"WriteToCsv to .*miss.*missing column 'b'"):
        writer.write({"a": 3})


def test_csv_round_trip_through_sink_and_source():
    prefix = f"memory://tab-{uuid.uuid4().hex}/rt"
    rows = [Row(id=i, name=f"n{i}", ratio=i / 4) for i in range(20)]
    _write(CsvSink(prefix), rows, "part.csv")
    assert _read_all(CsvSource(prefix + "-part.csv")) == rows


def test_sources_and_sinks_pickle(tmp_path):
    p = tmp_path / "a.csv"
    p.write_bytes(b"a\n1\n")
    objects = [
        CsvSource(str(p), dtype={"a": float}),
        JsonSource(str(p), lines=True),
        CsvSink(str(tmp_path / "o")),
        JsonSink(str(tmp_path / "o")),
    ]
    for obj in objects:
        for dumps in (pickle.dumps, cloudpickle.dumps):
            assert type(pickle.loads(dumps(obj))) is type(obj)
    assert _read_all(pickle.loads(pickle.dumps(objects[0]))) == [Row(a=1.0)]
