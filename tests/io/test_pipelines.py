"""File IO inside real pipelines: round trips, commit-on-success, several worker processes."""

from __future__ import annotations

import gzip
import re

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headrace.io import (
    ReadAllFromText,
    ReadFromAvro,
    ReadFromCsv,
    ReadFromJson,
    ReadFromParquet,
    ReadFromParquetBatched,
    ReadFromText,
    ReadFromTextWithFilename,
    WriteToAvro,
    WriteToCsv,
    WriteToJson,
    WriteToParquet,
    WriteToText,
)
from headrace.io.filebasedsink import TEMP_DIR_PREFIX
from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.model.row import Row
from headrace.model.transforms.core import Create, Map, WindowInto
from headrace.model.window import FixedWindows, TimestampedValue
from headrace.testing.util import assert_that, equal_to

MULTI = {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}


def _files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _shards(
    directory, prefix: str, suffix: str, runner_config: str, num_shards: int = 0
) -> list[str]:
    """The shard files of one sink: a complete ``-NNNNN-of-MMMMM`` set, one shard when one task
    wrote it (in process), one per writing task otherwise (runner-determined, as in Beam)."""
    names = sorted(p.name for p in directory.glob(f"{prefix}-*"))
    assert names, f"no {prefix}-* shards"
    total = int(re.fullmatch(rf"{prefix}-\d{{5}}-of-(\d{{5}}){re.escape(suffix)}", names[0])[1])
    assert names == [f"{prefix}-{i:05d}-of-{total:05d}{suffix}" for i in range(total)]
    if num_shards:
        assert total == num_shards
    elif runner_config == "in_process":
        assert total == 1
    return names


def _lines(directory, glob="*") -> list[str]:
    return sorted(
        line for p in directory.glob(glob) if p.is_file() for line in p.read_text().splitlines()
    )


def test_text_round_trip_one_shard(make_pipeline, tmp_path, runner_config):
    lines = [f"line {i}" for i in range(100)]
    with make_pipeline() as p:
        _ = p | Create(lines) | WriteToText(str(tmp_path / "out"), ".txt")
    names = _shards(tmp_path, "out", ".txt", runner_config)
    written = [line for n in names for line in (tmp_path / n).read_text().splitlines()]
    assert sorted(written) == sorted(lines)
    with make_pipeline() as p:
        got = p | ReadFromText(str(tmp_path / "out*.txt"))
        assert_that(got, equal_to(lines))


def test_text_fixed_shards_template_and_gzip(make_pipeline, tmp_path):
    with make_pipeline() as p:
        nums = p | Create(list(range(50)))
        _ = nums | "Three" >> WriteToText(str(tmp_path / "three"), num_shards=3)
        _ = nums | "One" >> WriteToText(
            str(tmp_path / "single"), ".txt.gz", shard_name_template="", header="n"
        )
    assert _files(tmp_path) == [
        "single.txt.gz",
        "three-00000-of-00003",
        "three-00001-of-00003",
        "three-00002-of-00003",
    ]
    assert sorted(map(int, _lines(tmp_path, "three-*"))) == list(range(50))
    body = gzip.decompress((tmp_path / "single.txt.gz").read_bytes()).decode().splitlines()
    assert body[0] == "n" and sorted(map(int, body[1:])) == list(range(50))
    with make_pipeline() as p:
        got = p | ReadFromText(str(tmp_path / "single.txt.gz"), skip_header_lines=1)
        assert_that(got | Map(int), equal_to(list(range(50))))


def test_empty_input_writes_one_empty_shard(make_pipeline, tmp_path):
    with make_pipeline() as p:
        _ = p | Create([]) | WriteToText(str(tmp_path / "empty"), footer="end")
        _ = (
            p
            | "Skip" >> Create([])
            | "W2" >> WriteToText(str(tmp_path / "skipped"), skip_if_empty=True)
        )
    assert _files(tmp_path) == ["empty-00000-of-00001"]
    assert (tmp_path / "empty-00000-of-00001").read_text() == "end\n"


def test_windowed_input_with_fixed_shards(make_pipeline, tmp_path):
    with make_pipeline() as p:
        _ = (
            p
            | Create(list(range(20)))
            | Map(lambda x: TimestampedValue(x, x * 10))
            | WindowInto(FixedWindows(30))
            | WriteToText(str(tmp_path / "w"), num_shards=2)
        )
    assert _files(tmp_path) == ["w-00000-of-00002", "w-00001-of-00002"]
    assert sorted(map(int, _lines(tmp_path))) == list(range(20))


def test_read_with_filename_and_read_all(make_pipeline, tmp_path):
    (tmp_path / "a.txt").write_text("1\n2\n")
    (tmp_path / "b.txt").write_text("3\n")
    with make_pipeline() as p:
        named = p | ReadFromTextWithFilename(str(tmp_path / "*.txt"))
        assert_that(
            named,
            equal_to(
                [
                    (str(tmp_path / "a.txt"), "1"),
                    (str(tmp_path / "a.txt"), "2"),
                    (str(tmp_path / "b.txt"), "3"),
                ]
            ),
            label="Named",
        )
        every = p | Create([str(tmp_path / "a.txt"), str(tmp_path / "b*")]) | ReadAllFromText()
        assert_that(every, equal_to(["1", "2", "3"]), label="All")


def test_csv_round_trip(make_pipeline, tmp_path, runner_config):
    records = [{"id": i, "name": f"n,{i}", "score": i / 2} for i in range(30)]
    with make_pipeline() as p:
        _ = p | Create(records) | WriteToCsv(str(tmp_path / "t"), file_name_suffix=".csv")
    for name in _shards(tmp_path, "t", ".csv", runner_config):
        assert (tmp_path / name).read_text().splitlines()[0] == "id,name,score"
    with make_pipeline() as p:
        rows = p | ReadFromCsv(str(tmp_path / "*.csv"))
        assert_that(rows, equal_to([Row(**r) for r in records]))


def test_json_round_trip(make_pipeline, tmp_path):
    rows = [Row(k=f"k{i}", v=i, nested={"xs": [i, i + 1]}) for i in range(25)]
    with make_pipeline() as p:
        _ = p | Create(rows) | WriteToJson(str(tmp_path / "j"), num_shards=2)
    assert _files(tmp_path) == ["j-00000-of-00002", "j-00001-of-00002"]
    with make_pipeline() as p:
        assert_that(p | ReadFromJson(str(tmp_path / "j-*")), equal_to(rows))


def test_parquet_round_trip(make_pipeline, tmp_path, runner_config):
    records = [{"name": f"n{i}", "age": i} for i in range(40)]
    schema = pa.schema([("name", pa.string()), ("age", pa.int64())])
    with make_pipeline() as p:
        pc = p | Create(records)
        _ = pc | "Typed" >> WriteToParquet(str(tmp_path / "typed"), schema, num_shards=2)
        _ = pc | "Inferred" >> WriteToParquet(
            str(tmp_path / "inferred"), file_name_suffix=".parquet", record_batch_size=7
        )
    _shards(tmp_path, "inferred", ".parquet", runner_config)
    assert _shards(tmp_path, "typed", "", runner_config, num_shards=2) == [
        "typed-00000-of-00002",
        "typed-00001-of-00002",
    ]
    assert pq.read_table(tmp_path / "typed-00000-of-00002").schema == schema
    with make_pipeline() as p:
        assert_that(
            p | "R1" >> ReadFromParquet(str(tmp_path / "typed-*")), equal_to(records), label="Dicts"
        )
        rows = p | "R2" >> ReadFromParquet(str(tmp_path / "inferred-*"), as_rows=True)
        assert_that(rows, equal_to([Row(**r) for r in records]), label="Rows")
        sizes = p | "R3" >> ReadFromParquetBatched(str(tmp_path / "typed-*")) | Map(len)
        assert_that(sizes | "Sum" >> Map(lambda n: n > 0), equal_to([True, True]), label="Batched")


def test_avro_round_trip(make_pipeline, tmp_path, runner_config):
    schema = {
        "type": "record",
        "name": "Item",
        "fields": [{"name": "id", "type": "long"}, {"name": "tag", "type": "string"}],
    }
    records = [{"id": i, "tag": f"t{i % 3}"} for i in range(60)]
    with make_pipeline() as p:
        _ = p | Create(records) | WriteToAvro(str(tmp_path / "a"), schema, file_name_suffix=".avro")
    ids = []
    for name in _shards(tmp_path, "a", ".avro", runner_config):
        with open(tmp_path / name, "rb") as f:
            ids.extend(r["id"] for r in fastavro.reader(f))
    assert sorted(ids) == list(range(60))
    with make_pipeline() as p:
        assert_that(p | ReadFromAvro(str(tmp_path / "*.avro")), equal_to(records))


def _boom(x):
    if x == 7:
        raise RuntimeError("boom at 7")
    return x


@pytest.mark.parametrize("num_shards", [0, 2])
def test_failing_pipeline_leaves_no_output(make_pipeline, tmp_path, num_shards):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Exception, match="boom at 7"):
        with make_pipeline() as p:
            nums = p | Create(list(range(10)))
            _ = nums | WriteToText(str(out / "data"), num_shards=num_shards)
            _ = nums | "Later" >> Map(_boom)
    assert _files(out) == []
    with pytest.raises(Exception, match="boom at 7"):
        with make_pipeline() as p:
            _ = (
                p
                | Create(list(range(10)))
                | Map(_boom)
                | Map(lambda x: {"x": x})  # records a Parquet sink can write: 7 is the failure
                | WriteToParquet(str(out / "pq"), num_shards=num_shards)
            )
    assert _files(out) == []


def test_bad_record_fails_the_run_and_names_the_output(make_pipeline, tmp_path):
    schema = pa.schema([("a", pa.int64())])
    with pytest.raises(Exception, match=r"WriteToParquet to .*bad.*'a': 'x'"):
        with make_pipeline() as p:
            _ = p | Create([{"a": 1}, {"a": "x"}]) | WriteToParquet(str(tmp_path / "bad"), schema)
    assert _files(tmp_path) == []


def test_missing_input_names_the_pattern(make_pipeline, tmp_path):
    with pytest.raises(Exception, match="nope-"):
        with make_pipeline() as p:
            _ = p | ReadFromText(str(tmp_path / "nope-*.txt"), validate=False)


def test_multi_processing_produces_the_same_records(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    lines = [f"{i},{i * i}" for i in range(20_000)]
    (src / "big.txt").write_text("\n".join(lines[:15_000]) + "\n")
    (src / "small.txt").write_text("\n".join(lines[15_000:]) + "\n")
    for name, options in [("single", {}), ("multi", MULTI)]:
        with Pipeline(options=PipelineOptions(**options)) as p:
            _ = (
                p
                | ReadFromText(str(src / "*.txt"))
                | Map(lambda s: {"n": int(s.split(",")[0]), "sq": int(s.split(",")[1])})
                | WriteToJson(str(tmp_path / name / "part"))
            )
    single = _lines(tmp_path / "single")
    multi = _lines(tmp_path / "multi")
    assert single == multi and len(multi) == 20_000
    assert _files(tmp_path / "single") == ["part-00000-of-00001"]
    assert 1 <= len(_files(tmp_path / "multi")) <= 2
    assert not [n for n in _files(tmp_path / "multi") if n.startswith(TEMP_DIR_PREFIX)]


def test_multi_processing_round_trips(tmp_path):
    records = [{"id": i, "name": f"n{i}"} for i in range(500)]
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    with Pipeline(options=PipelineOptions(**MULTI)) as p:
        pc = p | Create(records)
        _ = pc | "Pq" >> WriteToParquet(str(tmp_path / "pq"), schema, num_shards=3)
        _ = pc | "Csv" >> WriteToCsv(str(tmp_path / "csv"))
    with Pipeline(options=PipelineOptions(**MULTI)) as p:
        assert_that(p | ReadFromParquet(str(tmp_path / "pq-*")), equal_to(records), label="Pq")
        rows = p | ReadFromCsv(str(tmp_path / "csv-*"))
        assert_that(rows, equal_to([Row(**r) for r in records]), label="Csv")
    assert len(list(tmp_path.glob("pq-*-of-00003"))) == 3


def test_multi_processing_failure_leaves_no_output(tmp_path):
    with pytest.raises(Exception, match="boom at 7"):
        with Pipeline(options=PipelineOptions(**MULTI)) as p:
            nums = p | Create(list(range(10)))
            _ = nums | WriteToText(str(tmp_path / "data"))
            _ = nums | "Later" >> Map(_boom)
    assert _files(tmp_path) == []
