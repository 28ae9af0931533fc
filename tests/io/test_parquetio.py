"""Parquet: reading split by file and row group, writing with a given or inferred schema."""

from __future__ import annotations

import pickle

import cloudpickle
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headrace.io.filesystem import CorruptFileError
from headrace.io.parquetio import (
    ReadFromParquet,
    ReadFromParquetBatched,
    WriteToParquet,
    _ParquetSink,
    _ParquetSource,
)
from headrace.model.row import Row

SCHEMA = pa.schema([("name", pa.string()), ("age", pa.int64())])


def _table(n: int, start: int = 0) -> pa.Table:
    return pa.table(
        {"name": [f"n{i}" for i in range(start, start + n)], "age": list(range(start, start + n))}
    )


def _records(n: int, start: int = 0) -> list[dict]:
    return _table(n, start).to_pylist()


def _sink(prefix: str, **kw) -> _ParquetSink:
    return WriteToParquet(prefix, **kw)._sink


def test_read_records_columns_and_rows(tmp_path):
    pq.write_table(_table(3), tmp_path / "a.parquet")
    path = str(tmp_path / "a.parquet")
    assert list(_ParquetSource(path).read()) == _records(3)
    assert list(_ParquetSource(path, columns=["age"]).read()) == [{"age": i} for i in range(3)]
    assert list(_ParquetSource(path, as_rows=True).read())[0] == Row(name="n0", age=0)
    tables = list(_ParquetSource(path, batched=True).read())
    assert len(tables) == 1 and tables[0].equals(_table(3))


def test_split_per_file_and_row_group(tmp_path):
    pq.write_table(_table(1000), tmp_path / "a.parquet", row_group_size=100)
    pq.write_table(_table(10, 1000), tmp_path / "b.parquet")
    src = _ParquetSource(str(tmp_path / "*.parquet"))
    expected = _records(1010)
    assert list(src.read()) == expected
    for n in (1, 2, 3, 4, 7, 30):
        parts = src.split(n)
        assert [r for part in parts for r in part.read()] == expected
    assert len(src.split(4)) >= 3  # the big file is cut between row groups
    assert len(src.split(1)) == 1


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing"):
        ReadFromParquet(str(tmp_path / "nothing*.parquet"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(CorruptFileError, match="bad.parquet"):
        list(_ParquetSource(str(tmp_path / "bad.parquet")).read())
    with pytest.raises(ValueError, match="file_pattern"):
        ReadFromParquet()
    with pytest.raises(ValueError, match="file_pattern"):
        ReadFromParquetBatched()


def test_write_with_schema_and_row_groups(tmp_path, run_sink):
    sink = _sink(
        str(tmp_path / "out"),
        schema=SCHEMA,
        shard_name_template="",
        file_name_suffix=".parquet",
        record_batch_size=10,
        row_group_buffer_size=1,
    )
    run_sink(sink, [_records(35)])
    pf = pq.ParquetFile(tmp_path / "out.parquet")
    assert pf.schema_arrow == SCHEMA
    assert pf.metadata.num_row_groups == 4  # one row group per 10-record batch
    assert pf.read().to_pylist() == _records(35)
    assert pf.metadata.row_group(0).column(0).compression == "SNAPPY"


def test_write_rows_and_inferred_schema(tmp_path, run_sink):
    sink = _sink(str(tmp_path / "o"), num_shards=2, codec="none")
    run_sink(sink, [[Row(a=1, b="x"), {"a": 2, "b": "y"}, {"a": 3, "b": None}]])
    tables = [pq.read_table(p) for p in sorted(tmp_path.glob("o-*-of-00002"))]
    assert len(tables) == 2
    assert sorted(r["a"] for t in tables for r in t.to_pylist()) == [1, 2, 3]
    assert all(t.schema.field("a").type == pa.int64() for t in tables)


def test_empty_shards_are_valid_parquet(tmp_path, run_sink):
    run_sink(_sink(str(tmp_path / "s"), schema=SCHEMA, num_shards=2), [[]])
    for p in sorted(tmp_path.glob("s-*")):
        t = pq.read_table(p)
        assert t.num_rows == 0 and t.schema == SCHEMA
    run_sink(_sink(str(tmp_path / "noschema")), [[]])
    assert pq.read_table(tmp_path / "noschema-00000-of-00001").num_rows == 0


def test_bad_record_names_prefix_and_shows_record(tmp_path):
    sink = _sink(str(tmp_path / "people"), schema=SCHEMA, record_batch_size=3)
    writer = sink.open_writer(str(tmp_path / "tmp-file"))
    writer.write({"name": "ok", "age": 1})
    writer.write({"name": "bad", "age": "forty"})
    with pytest.raises(ValueError, match=r"WriteToParquet to .*people.*'age': 'forty'"):
        writer.write({"name": "ok2", "age": 2})
    with pytest.raises(ValueError, match=r"WriteToParquet.*cannot write record 7"):
        w2 = sink.open_writer(str(tmp_path / "tmp-file2"))
        w2.write(7)
        w2.close()


def test_write_validation(tmp_path):
    with pytest.raises(TypeError, match="pyarrow.Schema"):
        WriteToParquet(str(tmp_path / "o"), schema={"a": "int"})
    with pytest.raises(ValueError, match="record_batch_size"):
        WriteToParquet(str(tmp_path / "o"), SCHEMA, record_batch_size=0)


def test_parquet_objects_pickle(tmp_path):
    pq.write_table(_table(2), tmp_path / "a.parquet")
    src = _ParquetSource(str(tmp_path / "a.parquet"), columns=["name"])
    sink = _sink(str(tmp_path / "o"), schema=SCHEMA)
    for obj in (src, sink):
        for dumps in (pickle.dumps, cloudpickle.dumps):
            assert type(pickle.loads(dumps(obj))) is type(obj)
    assert pickle.loads(pickle.dumps(sink)).schema == SCHEMA
    assert list(pickle.loads(cloudpickle.dumps(src)).read()) == [{"name": "n0"}, {"name": "n1"}]


def test_read_all_from_parquet_and_avro(tmp_path):
    """Beam's ``ReadAllFromParquet(Batched)`` / ``ReadAllFromAvro``: read the files each input
    pattern names; ``with_filename`` pairs records with their file; a pattern that matches
    nothing reads nothing (Beam's ``ReadAllFiles``)."""
    import fastavro
    import pyarrow as pa
    import pyarrow.parquet as pq

    import headrace.beam as beam
    from headrace.testing.util import assert_that, equal_to

    pq.write_table(pa.table({"v": [1, 2]}), str(tmp_path / "a.parquet"))
    pq.write_table(pa.table({"v": [3]}), str(tmp_path / "b.parquet"))
    schema = {"type": "record", "name": "U", "fields": [{"name": "n", "type": "long"}]}
    with open(tmp_path / "u.avro", "wb") as f:
        fastavro.writer(f, schema, [{"n": 7}])
    patterns = [str(tmp_path / "*.parquet"), str(tmp_path / "none*.parquet")]
    b = str(tmp_path / "b.parquet")
    with beam.Pipeline() as p:
        names = p | "Patterns" >> beam.Create(patterns)
        rows = names | "Rows" >> beam.io.ReadAllFromParquet()
        assert_that(rows, equal_to([{"v": 1}, {"v": 2}, {"v": 3}]), label="CheckRows")
        tables = names | "Tables" >> beam.io.ReadAllFromParquetBatched(label="Batched")
        assert_that(tables | beam.Map(len), equal_to([2, 1]), label="CheckTables")
        named = (
            p
            | "One" >> beam.Create([b])
            | "Named" >> beam.io.ReadAllFromParquet(with_filename=True, label="WithName")
        )
        assert_that(named, equal_to([(b, {"v": 3})]), label="CheckNamed")
        avro = (
            p
            | "Avro" >> beam.Create([str(tmp_path / "u.avro"), str(tmp_path / "x.avro")])
            | beam.io.ReadAllFromAvro()
        )
        assert_that(avro, equal_to([{"n": 7}]), label="CheckAvro")


def test_write_to_parquet_batched_writes_tables(tmp_path):
    """Beam's ``WriteToParquetBatched``: elements are pyarrow Tables, written as they come."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import headrace.beam as beam

    with beam.Pipeline() as p:
        _ = (
            p
            | beam.Create([pa.table({"v": [1, 2]}), pa.table({"v": [3]})])
            | (beam.io.WriteToParquetBatched(str(tmp_path / "t"), shard_name_template=""))
        )
    assert sorted(pq.read_table(str(tmp_path / "t")).column("v").to_pylist()) == [1, 2, 3]
    with pytest.raises(TypeError, match="pyarrow Tables"):
        with beam.Pipeline() as p:
            _ = p | beam.Create([{"v": 1}]) | beam.io.WriteToParquetBatched(str(tmp_path / "u"))
