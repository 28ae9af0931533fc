"""Unbounded sources driven directly through the reader API (no runner): periodic impulses, file
watching, Redis Streams and NATS JetStream.

Redis (127.0.0.1:6379) and NATS with JetStream (127.0.0.1:4222) must be running for their tests
(``scripts/services.sh`` starts them). When one is unreachable its tests fail if ``CI`` is set and
are skipped, with the reason, otherwise. Every test uses its own stream/subject and removes it.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import os
import pickle
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from headrace.io.filesystem import FileMetadata
from headrace.io.streaming import (
    MatchContinuously,
    PeriodicImpulse,
    PeriodicSequence,
    ReadFromNatsJetStream,
    ReadFromRedisStreams,
    ReadFromTextContinuously,
    RebaseMode,
)
from headrace.io.streaming.filewatch import FileWatchSource
from headrace.io.streaming.nats_jetstream import JetStreamCheckpoint, JetStreamSource
from headrace.io.streaming.periodic import PeriodicImpulseSource
from headrace.io.streaming.redis_streams import RedisStreamCheckpoint, RedisStreamSource
from headrace.model.pipeline import Pipeline
from headrace.model.sources import (
    MAX_US,
    MIN_US,
    BoundedSource,
    UnboundedReader,
    UnboundedSource,
)
from headrace.model.timestamp import Timestamp
from headrace.model.transforms.core import Create
from headrace.model.transforms.unbounded import ReadUnbounded
from headrace.model.window import TimestampedValue
from headrace.testing.util import assert_that, equal_to

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
NATS_URL = "nats://127.0.0.1:4222"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(message: str) -> None:
    message += "; start it with scripts/services.sh"
    if _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class FakeClock:
    """A processing-time clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def drain(reader: UnboundedReader, polls: int = 2, timeout_s: float = 0.1) -> list[Any]:
    """Poll until ``polls`` polls in a row return nothing; return everything read."""
    out: list[Any] = []
    empty = 0
    while empty < polls:
        got = reader.poll(1000, timeout_s)
        out.extend(got)
        empty = 0 if got else empty + 1
    return out


def values(elements: list[Any]) -> list[Any]:
    return [e.value for e in elements]


def both_pickles(obj: Any) -> list[Any]:
    return [pickle.loads(pickle.dumps(obj)), cloudpickle.loads(cloudpickle.dumps(obj))]


# -- the API --


def test_read_unbounded_records_an_unbounded_read_node() -> None:
    source = PeriodicImpulseSource(0, 10_000_000, 1_000_000)
    p = Pipeline()
    out = p | ReadUnbounded(source)
    assert out.is_bounded is False
    graph = p.to_graph()
    (node,) = [n for n in graph.primitives() if n.kind == "Read"]
    assert node.label == "Read(PeriodicImpulse)"
    assert graph.pcollections[node.outputs[0][1]].bounded is False
    loaded = node.payload.load()
    assert isinstance(loaded, PeriodicImpulseSource)
    assert loaded.interval_us == 1_000_000


def test_read_unbounded_refuses_a_bounded_source() -> None:
    class Three(BoundedSource):
        def read(self) -> Iterator[int]:
            return iter([1, 2, 3])

    with pytest.raises(TypeError, match="UnboundedSource.*beam.io.Read"):
        ReadUnbounded(Three())  # type: ignore[arg-type]


def test_base_reader_defaults_and_missing_methods() -> None:
    class Bare(UnboundedSource):
        pass

    with pytest.raises(NotImplementedError, match="Bare must implement create_reader"):
        Bare().create_reader()
    bare = Bare()
    assert bare.split(4) == [bare]
    assert bare.default_label() == "Bare"
    reader = UnboundedReader()
    assert reader.watermark_us() == MIN_US
    assert reader.is_done() is False
    with pytest.raises(NotImplementedError, match="poll"):
        reader.poll(1, 0)
    with reader:
        pass


@pytest.mark.parametrize(
    "transform",
    [
        lambda: PeriodicImpulse(start_timestamp=0, fire_interval=1),
        lambda: ReadFromTextContinuously("/tmp/none/*.txt"),
        lambda: MatchContinuously("/tmp/none/*.txt"),
        lambda: ReadFromRedisStreams("s", "g", "c"),
        lambda: ReadFromNatsJetStream("a.b", "S", "d"),
    ],
)
def test_connectors_are_unbounded_and_their_sources_pickle(transform: Any) -> None:
    t = transform()
    p = Pipeline()
    assert (p | t).is_bounded is False
    for copy in both_pickles(t.source):
        assert type(copy) is type(t.source)
        assert copy.display_data() == t.source.display_data()


def test_missing_client_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(
        ImportError, match=r"ReadFromRedisStreams needs the 'redis'.*headrace\[streaming\]"
    ):
        RedisStreamSource("s", "g", "c").create_reader()
    monkeypatch.setitem(sys.modules, "nats", None)
    with pytest.raises(ImportError, match=r"ReadFromNatsJetStream needs the 'nats-py'.*streaming"):
        JetStreamSource("a.b", "S", "d").create_reader()


# -- periodic impulse --


def test_periodic_impulse_follows_the_clock() -> None:
    clock = FakeClock(95.0)
    impulse = PeriodicImpulse(
        start_timestamp=100, stop_timestamp=150, fire_interval=10, clock=clock
    )
    reader = impulse.source.create_reader()
    assert reader.poll(100, 0) == []
    assert reader.watermark_us() == 100_000_000
    clock.now = 100.0
    assert reader.poll(100, 0) == [TimestampedValue(100.0, 100)]
    clock.now = 135.5
    assert reader.poll(100, 0) == [TimestampedValue(float(t), t) for t in (110, 120, 130)]
    assert reader.watermark_us() == 140_000_000
    assert not reader.is_done()
    clock.now = 10_000.0
    assert reader.poll(100, 0) == [TimestampedValue(140.0, 140)]
    assert reader.is_done()
    assert reader.watermark_us() == MAX_US
    assert reader.poll(100, 0) == []


def test_periodic_impulse_catches_up_in_batches_and_resumes_from_checkpoint() -> None:
    clock = FakeClock(1000.0)
    source = PeriodicImpulse(
        start_timestamp=0, stop_timestamp=100, fire_interval=1, clock=clock
    ).source
    reader = source.create_reader()
    first = reader.poll(30, 0)
    assert values(first) == [float(i) for i in range(30)]
    saved = both_pickles(reader.checkpoint())[1]
    reader.commit(saved)
    reader.close()
    rest = drain(source.create_reader(saved), polls=1, timeout_s=0)
    assert values(rest) == [float(i) for i in range(30, 100)]


def test_periodic_impulse_waits_on_the_real_clock() -> None:
    start = time.time() + 0.1
    reader = PeriodicImpulse(start_timestamp=start, fire_interval=0.05).source.create_reader()
    # It returns once the first impulse is due: a poll that sat out its timeout would end in
    # pytest's own timeout (300 s) instead, so no clock reading is asserted here.
    got = reader.poll(10, timeout_s=600.0)
    assert len(got) >= 1
    assert got[0].timestamp_us == round(start * 1e6)
    assert time.time() >= start


def test_periodic_impulse_default_start_is_now_and_unbounded() -> None:
    clock = FakeClock(500.0)
    reader = PeriodicImpulse(fire_interval=60, clock=clock).source.create_reader()
    assert values(reader.poll(10, 0)) == [500.0]
    clock.now = 1e9
    assert len(reader.poll(5, 0)) == 5
    assert not reader.is_done()


def test_periodic_impulse_data_values_and_pre_timestamped_data() -> None:
    clock = FakeClock(1e6)
    reader = PeriodicImpulse(
        start_timestamp=10, fire_interval=5, data=["a", "b", "c"], clock=clock
    ).source.create_reader()
    assert drain(reader, polls=1, timeout_s=0) == [
        TimestampedValue("a", 10),
        TimestampedValue("b", 15),
        TimestampedValue("c", 20),
    ]
    assert reader.is_done()

    with pytest.warns(UserWarning, match="data repeats"):
        impulse = PeriodicImpulse(
            start_timestamp=0, stop_timestamp=5, fire_interval=1, data=["x", "y"], clock=clock
        )
    assert values(drain(impulse.source.create_reader(), polls=1, timeout_s=0)) == list("xyxyx")

    stamped = [(Timestamp(7), "late-ish"), (Timestamp(3), "older")]
    reader = PeriodicImpulse(
        start_timestamp=0, fire_interval=1, data=stamped, clock=clock
    ).source.create_reader()
    got = reader.poll(1, 0)
    assert got == [TimestampedValue("late-ish", 7)]
    assert reader.watermark_us() == 7_000_000  # as in Beam: the newest timestamp emitted
    assert reader.poll(1, 0) == [TimestampedValue("older", 3)]
    assert reader.watermark_us() == MAX_US

    with pytest.raises(ValueError, match="provide more data"):
        PeriodicImpulse(start_timestamp=0, stop_timestamp=10, fire_interval=1, data=stamped)
    with pytest.raises(ValueError, match="must be positive"):
        PeriodicImpulse(start_timestamp=0, fire_interval=0)


@pytest.mark.parametrize(
    ("rebase", "expected"),
    [
        (RebaseMode.REBASE_NONE, [10.0, 11.0]),
        (RebaseMode.REBASE_ALL, [1001.5, 1002.5]),
        (RebaseMode.REBASE_START, []),
    ],
)
def test_periodic_impulse_rebase(rebase: RebaseMode, expected: list[float]) -> None:
    clock = FakeClock(1001.5)
    impulse = PeriodicImpulse(
        start_timestamp=10, stop_timestamp=12, fire_interval=1, rebase=rebase, clock=clock
    )
    reader = impulse.source.create_reader()
    clock.now = 2000.0
    assert values(reader.poll(100, 0)) == expected
    assert reader.is_done()
    restored = impulse.source.create_reader(reader.checkpoint())
    assert restored.poll(100, 0) == []


def test_periodic_impulse_apply_windowing_adds_fixed_windows() -> None:
    p = Pipeline()
    out = p | PeriodicImpulse(start_timestamp=0, fire_interval=30, apply_windowing=True)
    assert out.is_bounded is False
    assert out.windowing.window_fn_name == "FixedWindows(30)"


def test_periodic_sequence_emits_each_range() -> None:
    with Pipeline() as p:
        times = (
            p
            | Create([(0, 3, 1), (Timestamp(10), Timestamp(12), 1)])
            | PeriodicSequence(clock=lambda: 1e6)
        )
        assert_that(times, equal_to([0.0, 1.0, 2.0, 10.0, 11.0]))


def test_periodic_sequence_waits_for_each_fire_time() -> None:
    from headrace.io.streaming.periodic import _SequenceDoFn

    start_us = time.time_ns() // 1000 + 50_000
    element = (Timestamp(micros=start_us), Timestamp(micros=start_us + 100_000), 0.05)
    out = list(_SequenceDoFn(None).process(element))
    assert time.time_ns() // 1000 >= start_us + 50_000
    assert [tv.timestamp_us for tv in out] == [start_us, start_us + 50_000]
    with pytest.raises(ValueError, match=r"\(start, stop, interval\)"):
        list(_SequenceDoFn(None).process(5))


# -- file watching --


def write_atomically(path: Path, text: str, mtime: float | None = None) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    os.replace(tmp, path)


def test_file_watch_reads_each_new_file_once(tmp_path: Path) -> None:
    write_atomically(tmp_path / "a.txt", "a1\na2\n", mtime=100)
    reader = ReadFromTextContinuously(str(tmp_path / "*.txt"), interval=0.02).source.create_reader()
    assert drain(reader) == [TimestampedValue("a1", 100), TimestampedValue("a2", 100)]
    write_atomically(tmp_path / "b.txt", "b1\r\nb2", mtime=200)
    write_atomically(tmp_path / "c.log", "ignored\n")
    (tmp_path / "sub.txt").mkdir()
    assert drain(reader) == [TimestampedValue("b1", 200), TimestampedValue("b2", 200)]
    write_atomically(tmp_path / "d.txt", "", mtime=300)
    write_atomically(tmp_path / "e.txt", "e1\n", mtime=250)
    assert drain(reader) == [TimestampedValue("e1", 250)]
    assert not reader.is_done()
    checkpoint = reader.checkpoint()
    assert sorted(os.path.basename(p) for p in checkpoint.done) == [
        "a.txt",
        "b.txt",
        "d.txt",
        "e.txt",
    ]
    reader.close()


def test_file_watch_restart_skips_seen_files_and_resumes_mid_file(tmp_path: Path) -> None:
    write_atomically(tmp_path / "1.txt", "".join(f"x{i}\n" for i in range(10)), mtime=10)
    write_atomically(tmp_path / "2.txt", "y0\ny1\n", mtime=20)
    source = ReadFromTextContinuously(str(tmp_path / "*.txt"), interval=0.02).source
    reader = source.create_reader()
    first = reader.poll(4, timeout_s=1)
    assert values(first) == ["x0", "x1", "x2", "x3"]
    saved = both_pickles(reader.checkpoint())[0]
    reader.commit(saved)
    assert values(reader.poll(3, 0)) == ["x4", "x5", "x6"]  # read but never checkpointed
    reader.close()

    write_atomically(tmp_path / "3.txt", "z0\n", mtime=30)
    reader = source.create_reader(saved)
    rest = values(drain(reader))
    assert rest == [f"x{i}" for i in range(4, 10)] + ["y0", "y1", "z0"]
    again = source.create_reader(reader.checkpoint())
    assert drain(again, polls=2) == []
    reader.close()
    again.close()


def test_file_watch_checkpoint_file_resumes_after_what_was_committed(tmp_path: Path) -> None:
    """issue 13: a restarted folder watch read every file again (no broker keeps its position).
    With ``checkpoint_file``, ``commit`` stores the checkpoint and a new reader starts from it;
    what was read but not committed is read again. Beam keeps an UnboundedSource's checkpoint
    in the runner's state (CheckpointMark); headrace's direct runner has no durable state, so
    the source keeps it, as Kafka keeps a consumer group's offsets."""
    watch = tmp_path / "in"
    watch.mkdir()
    state = str(tmp_path / "watch.json")
    for name, mtime in (("a", 10.0), ("b", 20.0)):
        write_atomically(watch / f"{name}.txt", f"{name}1\n{name}2\n", mtime)
    source = FileWatchSource(str(watch / "*.txt"), 1000, checkpoint_file=state)
    reader = source.create_reader()
    assert values(reader.poll(3, 1)) == ["a1", "a2", "b1"]
    saved = reader.checkpoint()
    reader.commit(saved)
    assert values(reader.poll(10, 1)) == ["b2"]
    reader.close()  # killed before committing b2

    write_atomically(watch / "c.txt", "c1\n", 30.0)
    reader = source.create_reader()
    assert values(drain(reader)) == ["b2", "c1"]
    reader.commit(reader.checkpoint())
    reader.close()
    reader = source.create_reader()
    assert drain(reader, polls=1) == []
    reader.close()

    Path(state).write_text("{not json")
    with pytest.raises(ValueError, match=r"watch.json' is damaged .*delete it"):
        source.create_reader()


def test_file_watch_checkpoint_at_any_line_of_a_poll(tmp_path: Path) -> None:
    """The runner commits a poll only up to the first line whose output is not yet published:
    a checkpoint at each line of a poll that spans files resumes right after that line."""
    for name, mtime in (("a", 10.0), ("b", 20.0), ("c", 30.0)):
        write_atomically(tmp_path / f"{name}.txt", f"{name}1\n{name}2", mtime)
    source = FileWatchSource(str(tmp_path / "*.txt"), 1000)
    reader = source.create_reader()
    got = values(reader.poll(5, 1))
    assert got == ["a1", "a2", "b1", "b2", "c1"]
    positions = reader.poll_positions()
    assert len(positions) == 5
    everything = ["a1", "a2", "b1", "b2", "c1", "c2"]
    for i, position in enumerate(positions):
        saved = reader.checkpoint_at(position)
        resumed = source.create_reader(both_pickles(saved)[1])
        assert values(drain(resumed)) == everything[i + 1 :], i
        resumed.close()
    reader.close()


def test_file_watch_watermark_and_processing_time_stamps(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    write_atomically(tmp_path / "old.txt", "o1\no2\no3\n", mtime=50)
    source = ReadFromTextContinuously(
        str(tmp_path / "*.txt"), interval=10, watermark_lag=5, clock=clock
    ).source
    reader = source.create_reader()
    assert reader.watermark_us() == MIN_US
    assert values(reader.poll(1, 0)) == ["o1"]
    assert reader.watermark_us() == 50_000_000  # held back by the unfinished file
    assert values(reader.poll(10, 0)) == ["o2", "o3"]
    assert reader.watermark_us() == 995_000_000  # scan time minus the lag
    clock.now = 1005.0
    write_atomically(tmp_path / "new.txt", "n1\n", mtime=1003)
    assert reader.poll(10, 0) == []  # the next scan is at 1010
    clock.now = 1010.0
    assert reader.poll(10, 0) == [TimestampedValue("n1", 1003)]
    assert reader.watermark_us() == 1_005_000_000

    by_scan = ReadFromTextContinuously(
        str(tmp_path / "new.txt"), timestamp="processing_time", clock=clock
    ).source.create_reader()
    assert by_scan.poll(10, 0) == [TimestampedValue("n1", 1010)]
    assert by_scan.watermark_us() == 1_010_000_000
    with pytest.raises(ValueError, match="timestamp must be 'mtime' or 'processing_time'"):
        ReadFromTextContinuously("x/*.txt", timestamp="ctime")


def test_file_watch_stop_after_reads_files_present_at_the_stop(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    source = ReadFromTextContinuously(
        str(tmp_path / "*.txt"), interval=100, stop_after=5, clock=clock
    ).source
    reader = source.create_reader()
    assert reader.poll(10, 0) == []
    write_atomically(tmp_path / "a.txt", "a\n")
    clock.now = 4.0
    assert reader.poll(10, 0) == []  # no scan due before 100
    assert not reader.is_done()
    clock.now = 5.0
    assert values(reader.poll(10, 0)) == ["a"]  # the last scan at the stop time
    assert reader.is_done()
    assert reader.watermark_us() == MAX_US
    write_atomically(tmp_path / "b.txt", "b\n")
    clock.now = 500.0
    assert reader.poll(10, 0) == []
    # The stop time travels in the checkpoint.
    restored = source.create_reader(reader.checkpoint())
    assert restored.is_done()
    assert restored.poll(10, 0) == []


def test_file_watch_max_files_and_match_updated_files(tmp_path: Path) -> None:
    for i in range(3):
        write_atomically(tmp_path / f"{i}.txt", f"{i}\n", mtime=10 + i)
    reader = ReadFromTextContinuously(
        str(tmp_path / "*.txt"), interval=0.01, max_files=2
    ).source.create_reader()
    assert values(drain(reader)) == ["0", "1"]
    assert reader.is_done()

    reader = ReadFromTextContinuously(
        str(tmp_path / "0.txt"), interval=0.01, match_updated_files=True
    ).source.create_reader()
    assert values(drain(reader)) == ["0"]
    write_atomically(tmp_path / "0.txt", "0\nmore\n", mtime=99)
    assert drain(reader) == [TimestampedValue("0", 99), TimestampedValue("more", 99)]


def test_file_watch_gzip_resume_and_bad_text(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "a.txt.gz", "wt") as f:
        f.write("g0\ng1\ng2\n")
    source = ReadFromTextContinuously(str(tmp_path / "*.gz"), interval=0.01).source
    reader = source.create_reader()
    assert values(reader.poll(2, timeout_s=1)) == ["g0", "g1"]
    resumed = source.create_reader(reader.checkpoint())
    assert values(drain(resumed)) == ["g2"]

    (tmp_path / "bad.bin").write_bytes(b"ok\n\xff\xfe\n")
    bad = ReadFromTextContinuously(str(tmp_path / "*.bin"), interval=0.01).source.create_reader()
    with pytest.raises(ValueError, match=r"bad\.bin.*not valid utf-8.*encoding="):
        drain(bad)


def test_match_continuously_emits_file_metadata(tmp_path: Path) -> None:
    write_atomically(tmp_path / "a.csv", "1,2\n")
    clock = FakeClock(2000.0)
    match = MatchContinuously(str(tmp_path / "*.csv"), interval=1, clock=clock)
    reader = match.source.create_reader()
    assert reader.poll(10, 0) == [TimestampedValue(FileMetadata(str(tmp_path / "a.csv"), 4), 2000)]
    write_atomically(tmp_path / "b.csv", "3\n")
    clock.now = 2001.0
    assert values(reader.poll(10, 0)) == [FileMetadata(str(tmp_path / "b.csv"), 2)]
    with pytest.raises(ValueError, match="has_deduplication=False"):
        MatchContinuously("x", has_deduplication=False)
    assert (Pipeline() | MatchContinuously("x", apply_windowing=True, interval=5)).windowing
    p = Pipeline()
    windowed = p | MatchContinuously("x/*", interval=5, apply_windowing=True)
    assert windowed.windowing.window_fn_name == "FixedWindows(5)"


def test_file_watch_on_an_fsspec_memory_filesystem() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"/watch-{uuid.uuid4().hex}"
    try:
        fs.pipe(f"{root}/a.txt", b"m1\nm2\n")
        reader = ReadFromTextContinuously(
            f"memory://{root}/*.txt", interval=0.01
        ).source.create_reader()
        assert values(drain(reader)) == ["m1", "m2"]
        assert list(reader.checkpoint().done) == [f"memory://{root}/a.txt"]
        fs.pipe(f"{root}/b.txt", b"m3\n")
        assert values(drain(reader)) == ["m3"]
    finally:
        fs.rm(root, recursive=True)


def test_file_watch_source_pickles_with_a_lambda_clock(tmp_path: Path) -> None:
    source = FileWatchSource(str(tmp_path / "*"), 1_000_000, clock=lambda: 5.0)
    copy = cloudpickle.loads(cloudpickle.dumps(source))
    assert copy.clock() == 5.0


# -- Redis Streams --


@functools.cache
def _redis_problem() -> str | None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(
        host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    finally:
        client.close()
    return None


@pytest.fixture
def redis_stream() -> Iterator[tuple[Any, str]]:
    """A Redis client and a fresh stream name (deleted afterwards)."""
    problem = _redis_problem()
    if problem is not None:
        _unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT} is unreachable ({problem})")
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, decode_responses=True)
    name = f"headrace-test-{uuid.uuid4().hex}"
    try:
        yield client, name
    finally:
        client.delete(name)
        client.close()


def _produce(client: Any, stream: str, start: int, stop: int) -> list[str]:
    return [client.xadd(stream, {"n": str(i)}) for i in range(start, stop)]


def _numbers(stream: str, consumer: str = "c1", **kw: Any) -> RedisStreamSource:
    return RedisStreamSource(stream, "g", consumer, parse=lambda _id, f: int(f["n"]), **kw)


def test_redis_resume_after_commit_has_no_loss_and_no_duplicates(redis_stream: Any) -> None:
    client, stream = redis_stream
    _produce(client, stream, 0, 20)
    source = _numbers(stream)
    reader = source.create_reader()
    first = reader.poll(7, timeout_s=1)
    assert values(first) == list(range(7))
    saved = both_pickles(reader.checkpoint())[0]
    reader.commit(saved)
    reader.commit(saved)  # idempotent
    reader.close()
    assert client.xpending(stream, "g")["pending"] == 0

    reader = source.create_reader(saved)
    _produce(client, stream, 20, 25)
    rest = values(drain(reader))
    assert rest == list(range(7, 25))
    reader.commit(reader.checkpoint())
    reader.close()
    assert client.xpending(stream, "g")["pending"] == 0
    fresh = source.create_reader()
    assert drain(fresh, polls=1) == []
    fresh.close()


def test_redis_uncommitted_entries_are_redelivered_after_a_crash(redis_stream: Any) -> None:
    client, stream = redis_stream
    _produce(client, stream, 0, 10)
    source = _numbers(stream)
    reader = source.create_reader()
    assert values(reader.poll(3, 1)) == [0, 1, 2]
    saved = reader.checkpoint()
    reader.commit(saved)
    assert values(reader.poll(4, 1)) == [3, 4, 5, 6]
    reader.close()  # a crash: 3..6 were delivered, never committed
    assert client.xpending(stream, "g")["pending"] == 4

    reader = source.create_reader(saved)
    assert values(drain(reader)) == [3, 4, 5, 6, 7, 8, 9]
    reader.close()
    # Without a checkpoint (a crash before the first one) the pending entries come back too.
    reader = source.create_reader()
    assert values(drain(reader)) == list(range(3, 10))
    reader.close()


def test_redis_restore_commits_a_checkpoint_the_dead_reader_did_not(redis_stream: Any) -> None:
    client, stream = redis_stream
    _produce(client, stream, 0, 8)
    source = _numbers(stream)
    reader = source.create_reader()
    assert values(reader.poll(5, 1)) == [0, 1, 2, 3, 4]
    saved = reader.checkpoint()  # persisted by the runner, then the process died before commit
    assert values(reader.poll(2, 1)) == [5, 6]
    reader.close()
    assert client.xpending(stream, "g")["pending"] == 7

    reader = source.create_reader(saved)
    assert client.xpending(stream, "g")["pending"] == 2  # 0..4 acknowledged on restore
    assert values(drain(reader)) == [5, 6, 7]
    older = saved
    reader.commit(reader.checkpoint())
    reader.commit(older)  # an older checkpoint after a newer one: no-op
    reader.close()
    assert client.xpending(stream, "g")["pending"] == 0


def test_redis_timestamps_watermark_and_plain_fields(redis_stream: Any) -> None:
    client, stream = redis_stream
    ids = _produce(client, stream, 0, 3)
    reader = RedisStreamSource(stream, "g", "c1").create_reader()
    assert reader.watermark_us() == MIN_US
    got = reader.poll(10, 1)
    assert [e.value for e in got] == [{"n": "0"}, {"n": "1"}, {"n": "2"}]
    assert [e.timestamp_us for e in got] == [int(i.split("-")[0]) * 1000 for i in ids]
    assert reader.watermark_us() == got[-1].timestamp_us
    assert reader.poll(10, 0.05) == []
    secs, micros = client.time()
    idle_mark = reader.watermark_us()
    assert got[-1].timestamp_us <= idle_mark <= secs * 1_000_000 + micros
    new_id = client.xadd(stream, {"n": "3"})
    later = reader.poll(10, 1)
    assert later[0].timestamp_us >= idle_mark  # the idle watermark held its promise
    assert later[0].timestamp_us == int(new_id.split("-")[0]) * 1000
    reader.close()

    raw = RedisStreamSource(stream, "g2", "c1", decode=False).create_reader()
    assert raw.poll(1, 1)[0].value == {b"n": b"0"}
    raw.close()


def test_redis_consumers_share_a_group(redis_stream: Any) -> None:
    client, stream = redis_stream
    _produce(client, stream, 0, 30)
    source = _numbers(stream, consumer="w", num_consumers=2)
    parts = source.split(8)
    assert [p.consumer for p in parts] == ["w-0", "w-1"]  # type: ignore[attr-defined]
    readers = [p.create_reader() for p in parts]
    seen: list[int] = []
    for _ in range(4):
        for r in readers:
            seen.extend(values(r.poll(5, 0.05)))
    assert sorted(seen) == list(range(30))
    for r in readers:
        r.close()


def test_redis_start_id_dollar_reads_only_new_entries(redis_stream: Any) -> None:
    client, stream = redis_stream
    _produce(client, stream, 0, 3)
    reader = _numbers(stream, start_id="$").create_reader()
    assert reader.poll(10, 0.05) == []
    _produce(client, stream, 3, 5)
    assert values(drain(reader)) == [3, 4]
    reader.close()


def test_redis_checkpoints_pickle() -> None:
    for copy in both_pickles(RedisStreamCheckpoint("5-1", 5000)):
        assert copy == RedisStreamCheckpoint("5-1", 5000)


def test_redis_unreachable_server_says_so() -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    source = RedisStreamSource(
        "s", "g", "c", port=1, client_kwargs={"retry": Retry(NoBackoff(), 0)}
    )
    with pytest.raises(
        ConnectionError, match=r"ReadFromRedisStreams: cannot connect to Redis at 127\.0\.0\.1:1"
    ):
        source.create_reader()


# -- NATS JetStream --


@functools.cache
def _nats_problem() -> str | None:
    import nats

    errors: list[Exception] = []

    async def record(exc: Exception) -> None:
        errors.append(exc)

    async def probe() -> None:
        nc = await asyncio.wait_for(nats.connect(NATS_URL, error_cb=record), 2)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    try:
        asyncio.run(probe())
    except Exception as e:
        cause = errors[-1] if errors else e
        return f"{type(cause).__name__}: {cause}"
    return None


class NatsStream:
    """A JetStream stream made for one test: publish to it, inspect its consumers."""

    def __init__(self) -> None:
        self.name = f"HEADRACE_{uuid.uuid4().hex[:12].upper()}"
        self.subject = f"headrace.test.{self.name.lower()}"
        self.timestamps: list[float] = []

    async def _with_js(self, fn: Any) -> Any:
        import nats

        nc = await nats.connect(NATS_URL)
        try:
            return await fn(nc.jetstream())
        finally:
            await nc.close()

    def run(self, fn: Any) -> Any:
        return asyncio.run(self._with_js(fn))

    def publish(self, start: int, stop: int) -> None:
        async def go(js: Any) -> None:
            for i in range(start, stop):
                await js.publish(f"{self.subject}.n", str(i).encode())

        self.run(go)

    def consumer_info(self, durable: str) -> Any:
        return self.run(lambda js: js.consumer_info(self.name, durable))

    def source(self, durable: str = "d1", **kw: Any) -> JetStreamSource:
        kw.setdefault("parse", int)
        return JetStreamSource(f"{self.subject}.>", self.name, durable, servers=NATS_URL, **kw)


@pytest.fixture
def nats_stream() -> Iterator[NatsStream]:
    problem = _nats_problem()
    if problem is not None:
        _unavailable(f"NATS JetStream at {NATS_URL} is unreachable ({problem})")
    s = NatsStream()
    s.run(lambda js: js.add_stream(name=s.name, subjects=[f"{s.subject}.>"]))
    try:
        yield s
    finally:
        s.run(lambda js: js.delete_stream(s.name))


def test_nats_resume_after_commit_has_no_loss_and_no_duplicates(nats_stream: NatsStream) -> None:
    nats_stream.publish(0, 20)
    source = nats_stream.source()
    reader = source.create_reader()
    assert values(reader.poll(7, 1)) == list(range(7))
    saved = both_pickles(reader.checkpoint())[1]
    reader.commit(saved)
    reader.commit(saved)
    reader.close()
    info = nats_stream.consumer_info("d1")
    assert info.ack_floor.stream_seq == 7

    reader = source.create_reader(saved)
    nats_stream.publish(20, 25)
    assert values(drain(reader)) == list(range(7, 25))
    reader.commit(reader.checkpoint())
    reader.close()
    assert nats_stream.consumer_info("d1").num_ack_pending == 0
    fresh = source.create_reader()
    assert drain(fresh, polls=1) == []
    fresh.close()


def test_nats_uncommitted_messages_are_redelivered_after_a_crash(nats_stream: NatsStream) -> None:
    nats_stream.publish(0, 10)
    source = nats_stream.source()
    reader = source.create_reader()
    assert values(reader.poll(3, 1)) == [0, 1, 2]
    saved = reader.checkpoint()
    reader.commit(saved)
    assert values(reader.poll(4, 1)) == [3, 4, 5, 6]
    reader.close()  # a crash: 3..6 delivered, never acknowledged (ack_wait is 30 s)
    assert nats_stream.consumer_info("d1").num_ack_pending == 4

    # At once, not after ack_wait: drain() stops at its first empty polls, long before 30 s.
    reader = source.create_reader(saved)
    assert values(drain(reader)) == [3, 4, 5, 6, 7, 8, 9]
    reader.close()
    reader = source.create_reader()  # no checkpoint: resume from the ack floor
    assert values(drain(reader)) == list(range(3, 10))
    reader.close()


def test_nats_restore_skips_what_the_checkpoint_covers(nats_stream: NatsStream) -> None:
    nats_stream.publish(0, 8)
    source = nats_stream.source()
    reader = source.create_reader()
    assert values(reader.poll(5, 1)) == [0, 1, 2, 3, 4]
    saved = reader.checkpoint()  # persisted, then the process died before commit
    assert values(reader.poll(2, 1)) == [5, 6]
    reader.close()

    reader = source.create_reader(saved)
    assert values(drain(reader)) == [5, 6, 7]
    reader.close()  # again without commit: the restored position (after 5) is now the floor
    reader = source.create_reader()
    assert values(drain(reader)) == [5, 6, 7]
    newest = reader.checkpoint()
    reader.commit(newest)
    reader.commit(saved)  # older: no-op
    with pytest.raises(ValueError, match="did not make"):
        reader.commit(JetStreamCheckpoint(999))
    reader.close()
    assert nats_stream.consumer_info("d1").ack_floor.stream_seq == 8


def test_nats_redelivery_while_held_is_not_returned_twice(nats_stream: NatsStream) -> None:
    nats_stream.publish(0, 3)
    reader = nats_stream.source(ack_wait_s=0.5).create_reader()
    assert values(reader.poll(10, 1)) == [0, 1, 2]
    time.sleep(0.8)  # ack_wait runs out: the server sends 0..2 again
    assert drain(reader, polls=2) == []
    nats_stream.publish(3, 4)
    assert values(drain(reader)) == [3]
    reader.commit(reader.checkpoint())
    reader.close()
    assert nats_stream.consumer_info("d1").ack_floor.stream_seq == 4


def test_nats_timestamps_watermark_and_metadata(nats_stream: NatsStream) -> None:
    before = time.time()
    nats_stream.publish(0, 3)
    after = time.time()
    reader = nats_stream.source(parse=None, with_metadata=True, clock_skew_s=0.5).create_reader()
    got = reader.poll(10, 1)
    assert [e.value.data for e in got] == [b"0", b"1", b"2"]
    assert [e.value.stream_seq for e in got] == [1, 2, 3]
    assert got[0].value.subject == f"{nats_stream.subject}.n"
    stamps = [e.timestamp_us for e in got]
    assert stamps == sorted(stamps)
    assert before - 1 <= stamps[0] / 1e6 <= after + 1
    assert reader.watermark_us() == stamps[-1]
    time.sleep(0.6)  # the clock moves past the last message plus clock_skew_s
    t0 = time.time()
    assert reader.poll(10, 0.05) == []
    t1 = time.time()
    mark = reader.watermark_us() / 1e6
    assert t0 - 0.5 - 0.001 <= mark <= t1 - 0.5
    assert mark > stamps[-1] / 1e6
    reader.close()

    plain = nats_stream.source("d2", parse=None).create_reader()
    assert values(plain.poll(1, 1)) == [b"0"]
    plain.close()


def test_nats_an_empty_fetch_with_a_backlog_does_not_move_the_watermark(
    nats_stream: NatsStream,
) -> None:
    """issue 13: after a restart, a fetch that timed out before the server answered (a loaded
    machine, a freshly recreated durable) moved the watermark to the clock, ahead of the
    messages the dead reader never acknowledged; they were then late, dropped, and acknowledged.
    An empty fetch moves the watermark only when the durable has nothing left to deliver (Beam's
    UnboundedReader.getWatermark contract: a bound on the timestamps of messages still to be
    read, sdks/java/core/.../io/UnboundedSource.java)."""
    nats_stream.publish(0, 5)
    source = nats_stream.source(clock_skew_s=0.0)
    first = source.create_reader()
    assert values(first.poll(3, 1)) == [0, 1, 2]
    first.close()  # killed: 0..2 delivered, never acknowledged

    reader = source.create_reader()
    real_fetch = reader._fetch

    async def timed_out(batch: int, timeout_s: float) -> list[Any]:
        return []

    reader._fetch = timed_out  # type: ignore[method-assign]
    assert reader.poll(10, 0.01) == []
    assert reader.watermark_us() == MIN_US  # the backlog 0..4 is still to come
    reader._fetch = real_fetch  # type: ignore[method-assign]
    got = drain(reader)
    assert values(got) == [0, 1, 2, 3, 4]
    last = got[-1].timestamp_us
    assert reader.watermark_us() >= last  # caught up: the empty polls moved it to the clock
    t0_us = time.time_ns() // 1000
    assert reader.poll(10, 0.05) == []
    assert reader.watermark_us() >= t0_us - 1_000  # (rounding) at the clock of the last fetch
    reader.close()


def test_nats_deliver_new_skips_existing_messages(nats_stream: NatsStream) -> None:
    nats_stream.publish(0, 3)
    reader = nats_stream.source(deliver_policy="new").create_reader()
    assert reader.poll(10, 0.05) == []
    nats_stream.publish(3, 5)
    assert values(drain(reader)) == [3, 4]
    reader.close()


def test_nats_refuses_a_durable_made_differently_and_a_missing_stream(
    nats_stream: NatsStream,
) -> None:
    from nats.js import api

    nats_stream.run(
        lambda js: js.add_consumer(
            nats_stream.name,
            api.ConsumerConfig(durable_name="explicit", ack_policy=api.AckPolicy.EXPLICIT),
        )
    )
    with pytest.raises(
        ValueError, match=r"durable 'explicit'.*ack_policy='explicit'.*nats consumer rm"
    ):
        nats_stream.source("explicit").create_reader()
    missing = JetStreamSource("x.y", "NO_SUCH_STREAM_" + uuid.uuid4().hex[:6], "d")
    with pytest.raises(ValueError, match="does not exist; create it"):
        missing.create_reader()


def test_nats_unreachable_server_says_so() -> None:
    source = JetStreamSource("a.b", "S", "d", servers="nats://127.0.0.1:1", connect_timeout_s=1)
    with pytest.raises(ConnectionError, match="cannot connect to NATS at nats://127.0.0.1:1"):
        source.create_reader()


def test_nats_checkpoints_pickle() -> None:
    for copy in both_pickles(JetStreamCheckpoint(12, 34)):
        assert copy == JetStreamCheckpoint(12, 34)


# -- whole pipelines: a restarted pipeline resumes after what the last one committed --


def _run_until(p: Pipeline, out: Path, lines: int, timeout_s: float = 20.0) -> None:
    """Run ``p`` in streaming mode until ``out`` holds ``lines`` lines, then cancel it."""
    result = p.run()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= lines:
                break
            time.sleep(0.02)
    finally:
        result.cancel()
    assert result.state.name in ("CANCELLED", "DONE"), result.state


def _appending(path: Path) -> Any:
    def append(x: Any) -> Any:
        with open(path, "a") as f:
            f.write(f"{x}\n")
        return x

    return append


def _streaming_pipeline() -> Pipeline:
    from headrace.model.options import PipelineOptions

    return Pipeline(options=PipelineOptions(streaming=True))


def test_redis_pipeline_restart_reads_only_new_entries(redis_stream: Any, tmp_path: Path) -> None:
    from headrace.model.transforms.core import Map

    client, stream = redis_stream
    out = tmp_path / "seen.txt"
    _produce(client, stream, 0, 10)
    p = _streaming_pipeline()
    _ = p | ReadUnbounded(_numbers(stream)) | Map(_appending(out))
    _run_until(p, out, 10)
    _produce(client, stream, 10, 15)
    p = _streaming_pipeline()
    _ = p | ReadUnbounded(_numbers(stream)) | Map(_appending(out))
    _run_until(p, out, 15)
    seen = [int(line) for line in out.read_text().splitlines()]
    assert sorted(seen) == list(range(15)), seen  # nothing lost, nothing twice


def test_nats_pipeline_restart_reads_only_new_messages(
    nats_stream: NatsStream, tmp_path: Path
) -> None:
    from headrace.model.transforms.core import Map

    out = tmp_path / "seen.txt"
    nats_stream.publish(0, 10)
    p = _streaming_pipeline()
    _ = p | ReadUnbounded(nats_stream.source()) | Map(_appending(out))
    _run_until(p, out, 10)
    nats_stream.publish(10, 15)
    p = _streaming_pipeline()
    _ = p | ReadUnbounded(nats_stream.source()) | Map(_appending(out))
    _run_until(p, out, 15)
    seen = [int(line) for line in out.read_text().splitlines()]
    assert sorted(seen) == list(range(15)), seen
