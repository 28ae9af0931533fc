"""Windowed writes: WriteToText/WriteToJson on unbounded input write one file per window and pane,
each renamed into place when complete; failures leave the published panes and no temp file."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import fsspec
import pytest

import headrace.beam as beam
from headrace.beam import window
from headrace.beam.testing.test_stream import TestStream
from headrace.beam.testing.util import assert_that, equal_to
from headrace.beam.transforms.trigger import (
    AccumulationMode,
    AfterCount,
    AfterWatermark,
    Repeatedly,
)
from headrace.io import windowedsink
from headrace.io.filebasedsink import AssignShardsDoFn as _KeyByShard
from headrace.io.lines import TextSink
from headrace.io.windowedsink import WriteWindowedFiles, _WritePaneDoFn
from headrace.model.pipeline import Pipeline
from headrace.model.window import IntervalWindow, PaneInfo, PaneInfoTiming

TV = window.TimestampedValue
W0 = "1970-01-01T00:00:00Z-1970-01-01T00:01:00Z"
W1 = "1970-01-01T00:01:00Z-1970-01-01T00:02:00Z"
W2 = "1970-01-01T00:02:00Z-1970-01-01T00:03:00Z"
ONE_SHARD = "-00000-of-00001"
# the same windows as Beam Python names them with its windowed default template '-W-SSSSS-of-NNNNN'
B0, B1, B2 = "[0.0, 60.0)", "[60.0, 120.0)", "[120.0, 180.0)"


def files(folder: Path) -> dict[str, str]:
    """name -> text of every entry in ``folder`` (temp files included, so tests can see them)."""
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def lines(text: str) -> list[str]:
    return sorted(text.splitlines())


def three_windows() -> TestStream:
    return (
        TestStream()
        .add_elements([TV("a", 1), TV("b", 30), TV("c", 61)])
        .advance_watermark_to(60)
        .add_elements([TV("d", 100), TV("e", 130)])
        .advance_watermark_to(120)
        .add_elements([TV("f", 150)])
        .advance_watermark_to_infinity()
    )


def test_one_file_per_window_with_its_contents(tmp_path: Path) -> None:
    prefix = str(tmp_path / "out")
    with beam.Pipeline() as p:
        written = (
            p
            | three_windows()
            | beam.WindowInto(window.FixedWindows(60))
            | beam.io.WriteToText(prefix, file_name_suffix=".txt")
        )
        assert_that(
            written | beam.Map(os.path.basename),
            equal_to([f"out-{w}{ONE_SHARD}.txt" for w in (B0, B1, B2)]),
        )
    out = {name: lines(text) for name, text in files(tmp_path).items()}
    assert out == {
        f"out-{B0}{ONE_SHARD}.txt": ["a", "b"],
        f"out-{B1}{ONE_SHARD}.txt": ["c", "d"],
        f"out-{B2}{ONE_SHARD}.txt": ["e", "f"],
    }


def test_file_names_are_beam_pythons(tmp_path: Path) -> None:
    """Beam Python's names for windowed writes (apache_beam/io/filebasedsink.py: the windowed
    default '-W-SSSSS-of-NNNNN', W the window as Beam prints it, V its UTC bounds), as Beam's
    own textio_test WriteStreamingTest expects them; a template without W or V would give
    every window one name (Beam overwrites), so headrace names the window itself."""
    stream = TestStream().add_elements([TV("a", 1), TV("b", 61)]).advance_watermark_to_infinity()
    for template, expected in [
        ("-V-SSSSS-of-NNNNN", [
            "v-[1970-01-01T00-00-00, 1970-01-01T00-01-00)-00000-of-00001.txt",
            "v-[1970-01-01T00-01-00, 1970-01-01T00-02-00)-00000-of-00001.txt",
        ]),
        ("-SSSSS-of-NNNNN", [f"v-{B0}{ONE_SHARD}.txt", f"v-{B1}{ONE_SHARD}.txt"]),
        ("-SSSSS", [f"v-{W0}-pane-0-00000.txt", f"v-{W1}-pane-0-00000.txt"]),
    ]:  # fmt: skip
        folder = tmp_path / template.strip("-")
        folder.mkdir()
        with beam.Pipeline() as p:
            _ = (
                p
                | stream
                | beam.WindowInto(window.FixedWindows(60))
                | beam.io.WriteToText(str(folder / "v"), ".txt", shard_name_template=template)
            )
        assert sorted(os.listdir(folder)) == sorted(expected), template


def test_each_file_is_published_when_its_pane_fires(tmp_path: Path) -> None:
    """A DoFn after the write sees each file complete, and the later windows' not yet written."""
    prefix = str(tmp_path / "out")

    def look(path: str) -> tuple[str, list[str], list[str]]:
        others = sorted(n for n in os.listdir(tmp_path) if n != os.path.basename(path))
        return (os.path.basename(path), lines(Path(path).read_text()), others)

    with beam.Pipeline() as p:
        seen = (
            p
            | three_windows()
            | beam.WindowInto(window.FixedWindows(60))
            | beam.io.WriteToText(prefix, shard_name_template="")
            | beam.Map(look)
        )
        assert_that(
            seen,
            equal_to(
                [
                    (f"out-{W0}-pane-0", ["a", "b"], []),
                    (f"out-{W1}-pane-0", ["c", "d"], [f"out-{W0}-pane-0"]),
                    (f"out-{W2}-pane-0", ["e", "f"], [f"out-{W0}-pane-0", f"out-{W1}-pane-0"]),
                ]
            ),
        )


def test_files_are_written_under_a_hidden_temp_name_and_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renames: list[tuple[str, str, str, bool]] = []
    real_publish = windowedsink.publish_new

    def spy(src: str, dst: str) -> bool:
        renames.append((src, dst, Path(src).read_text(), os.path.exists(dst)))
        return real_publish(src, dst)

    # unbounded input (a TestStream): published without replacing (publish_new)
    monkeypatch.setattr(windowedsink, "publish_new", spy)
    with beam.Pipeline() as p:
        _ = (
            p
            | three_windows()
            | beam.WindowInto(window.FixedWindows(60))
            | beam.io.WriteToText(str(tmp_path / "out"), shard_name_template="")
        )
    assert len(renames) == 3
    for src, dst, text, existed in renames:
        assert os.path.dirname(src) == str(tmp_path) == os.path.dirname(dst)
        name = os.path.basename(src)
        assert name.startswith("." + os.path.basename(dst) + ".") and name.endswith(".tmp")
        assert len(text.splitlines()) == 2 and not existed
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_early_firings_give_one_file_per_pane(tmp_path: Path) -> None:
    stream = (
        TestStream()
        .add_elements([TV("a", 1), TV("b", 2)])  # early pane 0: a b
        .add_elements([TV("c", 3)])
        .add_elements([TV("d", 4)])  # early pane 1: a b c d
        .add_elements([TV("e", 5)])
        .advance_watermark_to(60)  # on-time pane 2: a b c d e
        .add_elements([TV("late", 6)])  # within the allowed lateness: late pane 3
        .advance_watermark_to(200)
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline() as p:
        _ = (
            p
            | stream
            | beam.WindowInto(
                window.FixedWindows(60),
                trigger=AfterWatermark(early=AfterCount(2), late=AfterCount(1)),
                accumulation_mode=AccumulationMode.ACCUMULATING,
                allowed_lateness=100,
            )
            | beam.io.WriteToText(str(tmp_path / "out"), file_name_suffix=".txt")
        )
    out = {name: lines(text) for name, text in files(tmp_path).items()}
    assert out == {  # Beam Python gives all four panes one name; later panes keep their own
        f"out-{B0}{ONE_SHARD}.txt": ["a", "b"],
        f"out-{B0}{ONE_SHARD}-pane-1-EARLY.txt": ["a", "b", "c", "d"],
        f"out-{B0}{ONE_SHARD}-pane-2.txt": ["a", "b", "c", "d", "e"],
        f"out-{B0}{ONE_SHARD}-pane-3-LATE.txt": ["a", "b", "c", "d", "e", "late"],
    }


def test_discarding_panes_and_the_global_window(tmp_path: Path) -> None:
    stream = TestStream()
    for i in range(5):  # one bundle each: Beam evaluates a trigger once per bundle
        stream = stream.add_elements([TV(i, i)])
    stream = stream.advance_watermark_to_infinity()
    with beam.Pipeline() as p:
        _ = (
            p
            | stream
            | beam.WindowInto(
                window.GlobalWindows(),
                trigger=Repeatedly(AfterCount(2)),
                accumulation_mode=AccumulationMode.DISCARDING,
                fire_at_expiry=True,  # headrace's option: the final pane names its file too
            )
            | beam.io.WriteToText(str(tmp_path / "g"), shard_name_template="")
        )
    out = {name: lines(text) for name, text in files(tmp_path).items()}
    assert out == {
        "g-global-pane-0-EARLY": ["0", "1"],
        "g-global-pane-1-EARLY": ["2", "3"],
        "g-global-pane-2": ["4"],  # the final pane, when the input ends
    }


def test_json_variant(tmp_path: Path) -> None:
    stream = (
        TestStream()
        .add_elements([TV({"user": "ada", "n": 1}, 10), TV({"user": "bob", "n": 2}, 70)])
        .advance_watermark_to(65)
        .add_elements([beam.TimestampedValue(beam.Row(user="cy", n=3), 80)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline() as p:
        _ = (
            p
            | stream
            | beam.WindowInto(window.FixedWindows(60))
            | beam.io.WriteToJson(str(tmp_path / "events"), file_name_suffix=".jsonl")
        )
    out = files(tmp_path)
    assert sorted(out) == [f"events-{w}{ONE_SHARD}.jsonl" for w in (B0, B1)]
    records = [
        sorted((json.loads(line) for line in text.splitlines()), key=lambda r: r["user"])
        for text in out.values()
    ]
    assert records == [[{"user": "ada", "n": 1}], [{"user": "bob", "n": 2}, {"user": "cy", "n": 3}]]


def test_gzip_suffix_compresses_each_pane_file(tmp_path: Path) -> None:
    with beam.Pipeline() as p:
        _ = (
            p
            | three_windows()
            | beam.WindowInto(window.FixedWindows(60))
            | beam.io.WriteToText(str(tmp_path / "z"), ".txt.gz", shard_name_template="")
        )
    names = sorted(os.listdir(tmp_path))
    assert names == [f"z-{w}-pane-0.txt.gz" for w in (W0, W1, W2)]
    assert lines(gzip.decompress((tmp_path / names[0]).read_bytes()).decode()) == ["a", "b"]


def test_shards_split_each_pane(tmp_path: Path) -> None:
    stream = (
        TestStream().add_elements([TV(i, i) for i in range(10)]).advance_watermark_to_infinity()
    )
    with beam.Pipeline() as p:
        _ = (
            p
            | stream
            | beam.WindowInto(window.FixedWindows(60))
            | beam.io.WriteToText(str(tmp_path / "s"), num_shards=2)
        )
    out = files(tmp_path)
    assert sorted(out) == [f"s-{B0}-0000{i}-of-00002" for i in (0, 1)]
    per_shard = [lines(t) for t in out.values()]
    # unbounded input: a record's shard is a stable hash of its repr, so that a restarted run
    # puts it in the same file again (bounded input keeps Beam's random round robin)
    for shard, records in enumerate(per_shard):
        assert all(zlib.crc32(repr(int(x)).encode()) % 2 == shard for x in records)
    assert sorted(int(x) for shard in per_shard for x in shard) == list(range(10))


# -- a restarted streaming run publishing a pane again --


def _write_window(out: Path, records: list[str]) -> None:
    """One streaming run writing ``records`` (all in the first minute) as one pane."""
    stream = TestStream().add_elements([TV(r, 1) for r in records]).advance_watermark_to_infinity()
    with beam.Pipeline() as p:
        _ = (
            p
            | stream
            | beam.WindowInto(window.FixedWindows(60))
            | beam.io.WriteToText(str(out / "c"), shard_name_template="")
        )


def test_a_restarted_run_keeps_a_published_pane_with_the_same_records(tmp_path: Path) -> None:
    """A restarted streaming run recomputes the panes of input it had not acknowledged, and may
    fire a pane the dead run already published. The same records (here in another order, as
    arrival order may differ) leave the published file untouched: same inode, no temp file.
    Beam does the same at finalize (sdks/python/apache_beam/io/filebasedsink.py,
    _check_state_for_finalize_write): a destination that exists with the temp file's checksum is
    skipped, and one with a different checksum is an error, not overwritten."""
    _write_window(tmp_path, ["a", "b", "c"])
    name = f"c-{W0}-pane-0"
    before = os.stat(tmp_path / name)
    _write_window(tmp_path, ["c", "a", "b"])
    assert files(tmp_path) == {name: "a\nb\nc\n"}
    assert os.stat(tmp_path / name).st_ino == before.st_ino


def test_a_published_pane_is_never_replaced_with_less_data(tmp_path: Path) -> None:
    """issue 13: a restarted NATS pipeline replaced published ``pane-0`` files with fewer
    elements, silently losing acknowledged messages. A pane recomputed with different records
    is refused with a message naming the file; the published file and nothing else remains."""
    _write_window(tmp_path, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"pane file .*c-1970.*pane-0' is already published"):
        _write_window(tmp_path, ["a", "b"])
    assert files(tmp_path) == {f"c-{W0}-pane-0": "a\nb\nc\n"}


def test_a_bounded_rerun_still_replaces_its_panes(tmp_path: Path) -> None:
    """Bounded input (a batch rerun with ``windowed_writes``) replaces the file, as before."""
    for records in (["a", "b", "c"], ["a"]):
        with beam.Pipeline() as p:
            _ = (
                p
                | beam.Create(records)
                | beam.Map(lambda r: TV(r, 1))
                | beam.WindowInto(window.FixedWindows(60))
                | beam.io.WriteToText(
                    str(tmp_path / "c"), shard_name_template="", windowed_writes=True
                )
            )
    assert files(tmp_path) == {f"c-{W0}-pane-0": "a\n"}


# -- failures --


class FailOn(beam.DoFn):
    """Passes elements through; raises on ``bad``."""

    def __init__(self, bad: Any) -> None:
        self.bad = bad

    def process(self, x: Any) -> Any:
        if x == self.bad:
            raise RuntimeError(f"cannot handle {x!r}")
        yield x


def run_expecting_failure(build: Callable[[Pipeline], None], match: str) -> None:
    p = beam.Pipeline()
    build(p)
    with pytest.raises(Exception, match=match):
        p.run().wait_until_finish()


def test_a_failure_after_two_panes_leaves_the_two_complete_files(tmp_path: Path) -> None:
    def build(p: Pipeline) -> None:
        _ = (
            p
            | three_windows()
            | beam.ParDo(FailOn("f"))  # "f" arrives after windows 0 and 1 have fired
            | beam.WindowInto(window.FixedWindows(60))
            | beam.io.WriteToText(str(tmp_path / "out"), shard_name_template="")
        )

    run_expecting_failure(build, "cannot handle 'f'")
    out = files(tmp_path)
    assert sorted(out) == [f"out-{W0}-pane-0", f"out-{W1}-pane-0"]
    assert [lines(t) for t in out.values()] == [["a", "b"], ["c", "d"]]


def test_a_failure_while_writing_a_pane_removes_its_temp_file(tmp_path: Path) -> None:
    stream = (
        TestStream()
        .add_elements([TV({"v": 1}, 1)])
        .advance_watermark_to(60)
        .add_elements([TV({"v": 2}, 61)])
        .advance_watermark_to(120)
        .add_elements([TV({"v": 3}, 121), TV({"v": object()}, 122)])  # not JSON
        .advance_watermark_to_infinity()
    )

    def build(p: Pipeline) -> None:
        _ = (
            p
            | stream
            | beam.WindowInto(window.FixedWindows(60))
            | beam.io.WriteToJson(str(tmp_path / "j"), shard_name_template="")
        )

    run_expecting_failure(build, "WriteToJson")
    out = files(tmp_path)
    assert sorted(out) == [f"j-{W0}-pane-0", f"j-{W1}-pane-0"]
    assert [json.loads(t) for t in out.values()] == [{"v": 1}, {"v": 2}]


def test_a_failure_names_the_file_being_written(tmp_path: Path) -> None:
    class FullDisk(TextSink):
        def open_writer(self, path: str) -> Any:
            Path(path).write_text("half")
            raise OSError("disk full")

    fn = _WritePaneDoFn(FullDisk(str(tmp_path / "x"), shard_name_template=""), 1)
    pane = PaneInfo(True, True, PaneInfoTiming.ON_TIME, 0, 0)
    with pytest.raises(OSError, match="disk full") as info:
        list(fn.process((0, ["r"]), IntervalWindow(0, 60), pane))
    assert any(f"x-{W0}-pane-0" in note for note in info.value.__notes__)
    assert os.listdir(tmp_path) == []


# -- dispatch, batch, pickling --


def test_windowed_writes_true_on_bounded_input(
    tmp_path: Path, make_pipeline: Callable[[], Pipeline]
) -> None:
    folder = tmp_path
    with make_pipeline() as p:
        written = (
            p
            | beam.Create([("a", 5), ("b", 70), ("c", 75)])
            | beam.MapTuple(TV)
            | beam.WindowInto(window.FixedWindows(60))
            | beam.io.WriteToText(str(folder / "b"), shard_name_template="", windowed_writes=True)
        )
        assert_that(
            written | beam.Map(os.path.basename), equal_to([f"b-{W0}-pane-0", f"b-{W1}-pane-0"])
        )
    assert [lines(t) for t in files(folder).values()] == [["a"], ["b", "c"]]


def test_dispatch_follows_boundedness_unless_told() -> None:
    def kinds(pcoll_of: Callable[[Pipeline], Any], **kw: Any) -> set[str]:
        p = Pipeline()
        pcoll_of(p) | beam.io.WriteToText("/tmp/never/x", **kw)
        return {t.kind for t in p.to_graph().transforms.values()}

    bounded = lambda p: p | beam.Create(["x"])  # noqa: E731
    unbounded = lambda p: p | TestStream().add_elements(["x"])  # noqa: E731
    assert "Finalize" in kinds(bounded)
    assert "Finalize" not in kinds(unbounded)
    assert "Finalize" not in kinds(bounded, windowed_writes=True)
    assert "Finalize" in kinds(unbounded, windowed_writes=False)
    p = Pipeline()
    json_out = p | TestStream().add_elements([{"a": 1}]) | beam.io.WriteToJson("/tmp/never/j")
    assert json_out.is_bounded is False  # the paths written, not PDone


def test_windowed_writes_false_on_unbounded_input_commits_at_the_end(tmp_path: Path) -> None:
    with beam.Pipeline() as p:
        _ = (
            p
            | three_windows()
            | beam.io.WriteToText(str(tmp_path / "all"), num_shards=1, windowed_writes=False)
        )
    out = files(tmp_path)
    assert list(out) == ["all-00000-of-00001"]
    assert lines(out["all-00000-of-00001"]) == ["a", "b", "c", "d", "e", "f"]


def test_the_write_dofns_pickle(tmp_path: Path) -> None:
    sink = TextSink(str(tmp_path / "p"), shard_name_template="")
    pane = PaneInfo(True, True, PaneInfoTiming.ON_TIME, 0, 0)
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        fn = loads(dumps(_WritePaneDoFn(sink, 1)))
        (path,) = fn.process((0, ["x"]), IntervalWindow(0, 60), pane)
        assert Path(path).read_text() == "x\n"
        keyer = loads(dumps(_KeyByShard(3)))
        keyer.start_bundle()
        assert sorted(k for x in range(3) for k, _ in keyer.process(x)) == [0, 1, 2]
        transform = loads(dumps(WriteWindowedFiles(sink)))
        assert transform.sink.file_path_prefix == sink.file_path_prefix


def test_write_windowed_files_needs_a_file_sink() -> None:
    with pytest.raises(TypeError, match="WriteWindowedFiles needs a FileBasedSink"):
        WriteWindowedFiles("not a sink")  # type: ignore[arg-type]


def test_windowed_writes_to_a_non_local_file_system() -> None:
    fs = fsspec.filesystem("memory")
    with beam.Pipeline() as p:
        _ = (
            p
            | three_windows()
            | beam.WindowInto(window.FixedWindows(60))
            | beam.io.WriteToText("memory://windowed/out", shard_name_template="")
        )
    names = sorted(fs.ls("/windowed", detail=False))
    assert names == [f"/windowed/out-{w}-pane-0" for w in (W0, W1, W2)]
    assert lines(fs.cat(names[1]).decode()) == ["c", "d"]
    fs.rm("/windowed", recursive=True)


def test_triggering_frequency_writes_fixed_windows_of_a_global_stream(tmp_path: Path) -> None:
    """Beam's ``triggering_frequency`` (``iobase.WriteImpl._apply_windowing``): an unbounded write
    is re-windowed into FixedWindows(triggering_frequency), each written once when the watermark
    passes it (headrace did not take the argument)."""
    with beam.Pipeline() as p:
        _ = (
            p
            | three_windows()
            | beam.io.WriteToText(
                str(tmp_path / "out"), file_name_suffix=".txt", triggering_frequency=60
            )
        )
    out = {name: lines(text) for name, text in files(tmp_path).items()}
    assert out == {
        f"out-{B0}{ONE_SHARD}.txt": ["a", "b"],
        f"out-{B1}{ONE_SHARD}.txt": ["c", "d"],
        f"out-{B2}{ONE_SHARD}.txt": ["e", "f"],
    }


# -- Parquet --


def _parquet_stream(rows: list[int]) -> TestStream:
    return (
        TestStream()
        .add_elements([TV({"age": n}, 1 + i) for i, n in enumerate(rows)])
        .advance_watermark_to_infinity()
    )


def _write_parquet(folder: Path, rows: list[int], **kwargs: Any) -> None:
    import pyarrow as pa

    with beam.Pipeline() as p:
        _ = (
            p
            | _parquet_stream(rows)
            | beam.io.WriteToParquet(
                str(folder / "ages"), pa.schema([("age", pa.int64())]), file_name_suffix=".parquet",
                **kwargs,
            )
        )  # fmt: skip


def test_parquet_writes_unbounded_input_per_window_as_beam(tmp_path: Path) -> None:
    """Beam's parquetio_test WriteStreamingTest: triggering_frequency on an unbounded write gives
    one file per window and shard, named '-[start, end)-SSSSS-of-NNNNN'."""
    import pyarrow.parquet as pq

    _write_parquet(tmp_path, [30, 40, 50, 60], triggering_frequency=60, num_shards=2)
    names = sorted(os.listdir(tmp_path))
    assert names == [f"ages-{B0}-0000{i}-of-00002.parquet" for i in (0, 1)]
    ages = sorted(r["age"] for n in names for r in pq.read_table(tmp_path / n).to_pylist())
    assert ages == [30, 40, 50, 60]


def test_parquet_panes_recomputed_compare_rows_not_bytes(tmp_path: Path) -> None:
    """A restarted run recomputing a published Parquet pane: the same rows in another order
    keep the published file; other rows are refused (the text sinks compare lines)."""
    _write_parquet(tmp_path, [1, 2, 3], shard_name_template="")
    (name,) = os.listdir(tmp_path)
    before = os.stat(tmp_path / name).st_ino
    _write_parquet(tmp_path, [3, 1, 2], shard_name_template="")
    assert os.listdir(tmp_path) == [name] and os.stat(tmp_path / name).st_ino == before
    with pytest.raises(ValueError, match="is already published"):
        _write_parquet(tmp_path, [1, 2], shard_name_template="")
