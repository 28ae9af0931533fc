"""Avro: reading per file, writing with a dict or JSON schema."""

from __future__ import annotations

import json
import pickle

import cloudpickle
import fastavro
import pytest

from headrace.io.avroio import ReadFromAvro, WriteToAvro, _AvroSource
from headrace.io.filesystem import CorruptFileError
from headrace.model.row import Row

SCHEMA = {
    "type": "record",
    "name": "User",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "number", "type": ["null", "long"], "default": None},
    ],
}


def _write_avro(path, records, codec="null"):
    with open(path, "wb") as f:
        fastavro.writer(f, SCHEMA, records, codec=codec)


def test_read_per_file(tmp_path):
    _write_avro(tmp_path / "a.avro", [{"name": "a", "number": 1}])
    _write_avro(tmp_path / "b.avro", [{"name": "b", "number": None}, {"name": "c", "number": 3}])
    src = _AvroSource(str(tmp_path / "*.avro"), min_bundle_size=0, validate=True, as_rows=False)
    expected = [
        {"name": "a", "number": 1},
        {"name": "b", "number": None},
        {"name": "c", "number": 3},
    ]
    assert list(src.read()) == expected
    parts = src.split(2)
    assert len(parts) == 2
    assert [r for p in parts for r in p.read()] == expected
    rows = _AvroSource(str(tmp_path / "a.avro"), min_bundle_size=0, validate=True, as_rows=True)
    assert list(rows.read()) == [Row(name="a", number=1)]


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="none-here"):
        ReadFromAvro(str(tmp_path / "none-here*.avro"))
    (tmp_path / "bad.avro").write_bytes(b"definitely not avro")
    src = _AvroSource(str(tmp_path / "bad.avro"), min_bundle_size=0, validate=True, as_rows=False)
    with pytest.raises(CorruptFileError, match="bad.avro"):
        list(src.read())
    _write_avro(
        tmp_path / "cut.avro",
        [{"name": "x" * 50, "number": i} for i in range(100)],
        codec="deflate",
    )
    data = (tmp_path / "cut.avro").read_bytes()
    (tmp_path / "cut.avro").write_bytes(data[: len(data) - 40])
    src = _AvroSource(str(tmp_path / "cut.avro"), min_bundle_size=0, validate=True, as_rows=False)
    with pytest.raises(CorruptFileError, match="cut.avro"):
        list(src.read())


@pytest.mark.parametrize("schema", [SCHEMA, json.dumps(SCHEMA)])
def test_write_dict_or_json_schema(tmp_path, run_sink, schema):
    sink = WriteToAvro(str(tmp_path / "u"), schema, file_name_suffix=".avro", num_shards=2)._sink
    run_sink(sink, [[{"name": "a", "number": 1}, Row(name="b", number=None)], [{"name": "c"}]])
    files = sorted(tmp_path.glob("u-*-of-00002.avro"))
    assert len(files) == 2
    got = []
    for p in files:
        with open(p, "rb") as f:
            reader = fastavro.reader(f)
            assert reader.codec == "deflate"
            got.extend(reader)
    assert sorted(r["name"] for r in got) == ["a", "b", "c"]


def test_empty_output_is_a_valid_avro_file(tmp_path, run_sink):
    run_sink(WriteToAvro(str(tmp_path / "e"), SCHEMA, codec="null")._sink, [[]])
    with open(tmp_path / "e-00000-of-00001", "rb") as f:
        assert list(fastavro.reader(f)) == []


def test_bad_record_names_prefix_and_shows_record(tmp_path):
    sink = WriteToAvro(str(tmp_path / "users"), SCHEMA)._sink
    writer = sink.open_writer(str(tmp_path / "t"))
    with pytest.raises(ValueError, match=r"WriteToAvro to .*users.*'number': 'seven'"):
        writer.write({"name": "x", "number": "seven"})
    with pytest.raises(ValueError, match=r"WriteToAvro to .*users.*\{'number': 1\}"):
        writer.write({"number": 1})
    writer.close()


def test_schema_and_codec_validation(tmp_path):
    with pytest.raises(ValueError, match="invalid Avro schema"):
        WriteToAvro(str(tmp_path / "o"), {"type": "no-such-type"})
    with pytest.raises(ValueError, match="not valid JSON"):
        WriteToAvro(str(tmp_path / "o"), "{nope")
    with pytest.raises(TypeError, match="dict or a JSON string"):
        WriteToAvro(str(tmp_path / "o"), 42)
    with pytest.raises(ValueError, match="codec 'nonsense'"):
        WriteToAvro(str(tmp_path / "o"), SCHEMA, codec="nonsense")


def test_avro_objects_pickle(tmp_path):
    _write_avro(tmp_path / "a.avro", [{"name": "a", "number": 1}])
    src = _AvroSource(str(tmp_path / "a.avro"), min_bundle_size=0, validate=True, as_rows=False)
    sink = WriteToAvro(str(tmp_path / "o"), SCHEMA)._sink
    for obj in (src, sink):
        for dumps in (pickle.dumps, cloudpickle.dumps):
            assert type(pickle.loads(dumps(obj))) is type(obj)
    assert list(pickle.loads(pickle.dumps(src)).read()) == [{"name": "a", "number": 1}]
