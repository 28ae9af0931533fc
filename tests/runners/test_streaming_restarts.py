"""Streaming restarts are exactly once (issue 13): what an unbounded source acknowledges, and the
kill test (SIGKILL and restart a windowed count while messages arrive) on NATS JetStream, Redis
Streams and a watched folder.

Redis (127.0.0.1:6379) and NATS with JetStream (127.0.0.1:4222) must be running
(``scripts/services.sh``); when one is unreachable its tests fail if ``CI`` is set and are skipped,
with the reason, otherwise. The kill campaign is ``benchmarks/stream_kill.py`` (its long form
prints the figures); these tests run it in a short form.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from headrace.io.streaming import ReadFromRedisStreams
from headrace.io.textio import WriteToText
from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.model.sources import MIN_US, UnboundedReader, UnboundedSource, timestamped_us
from headrace.model.transforms.core import CombinePerKey, Map, WindowInto
from headrace.model.transforms.unbounded import ReadUnbounded
from headrace.model.window import FixedWindows, TimestampedValue

ROOT = Path(__file__).resolve().parents[2]
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _campaign_module() -> ModuleType:
    if "stream_kill" in sys.modules:
        return sys.modules["stream_kill"]
    spec = importlib.util.spec_from_file_location("stream_kill", ROOT / "benchmarks/stream_kill.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stream_kill"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _unavailable(message: str) -> None:
    message += "; start it with scripts/services.sh"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _need(source: str) -> None:
    if source == "redis":
        import redis

        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2)
        try:
            client.ping()
        except redis.exceptions.ConnectionError as exc:
            _unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT} is unreachable ({exc})")
        finally:
            client.close()
    elif source == "nats":
        import asyncio

        import nats

        async def probe() -> None:
            nc = await asyncio.wait_for(nats.connect("nats://127.0.0.1:4222"), 2)
            try:
                await nc.jetstream().account_info()
            finally:
                await nc.close()

        try:
            asyncio.run(probe())
        except Exception as exc:
            _unavailable(f"NATS JetStream at 127.0.0.1:4222 is unreachable ({exc})")


@pytest.fixture
def redis_stream() -> Iterator[tuple[Any, str]]:
    import redis

    _need("redis")
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    name = f"headrace-restart-{uuid.uuid4().hex[:10]}"
    try:
        yield client, name
    finally:
        client.delete(name)
        client.close()


def _value(_entry_id: str, fields: dict[str, str]) -> int:
    return int(fields["n"])


def _pending(client: Any, stream: str) -> list[str]:
    rows = client.xpending_range(stream, "g", "-", "+", 100)
    return [row["message_id"].decode() for row in rows]


def test_acks_follow_each_published_window_while_later_ones_are_open(
    redis_stream: tuple[Any, str], tmp_path: Path
) -> None:
    """Entries are acknowledged once the panes made from them are published, up to the first
    entry still held, even inside one poll and while a later window stays open. Before,
    sources were acknowledged only when no grouping held anything: a stream that never pauses
    was never acknowledged, and its backlog grew until the broker stopped delivering. Beam's
    contract for UnboundedSource.CheckpointMark.finalizeCheckpoint (sdks/java/core/.../io/
    UnboundedSource.java): called once the output up to the checkpoint is durably committed.
    """
    client, stream = redis_stream
    # explicit ids: timestamps 0.5 s and 1.5 s (window [0, 2)) and 4.5 s (window [4, 6))
    for ms, n in ((500, 1), (1500, 2), (4500, 3)):
        client.xadd(stream, {"n": str(n)}, id=f"{ms}-0")
    p = Pipeline(options=PipelineOptions(streaming=True))
    _ = (
        p
        | ReadFromRedisStreams(
            stream,
            "g",
            "c0",
            REDIS_HOST,
            REDIS_PORT,
            parse=_value,
            advance_watermark_when_idle=False,
        )  # fmt: skip
        | Map(lambda n: ("k", n))
        | WindowInto(FixedWindows(2))
        | CombinePerKey(sum)
        | Map(lambda kv: f"{kv[0]} {kv[1]}")
        | WriteToText(str(tmp_path / "sums"), file_name_suffix=".txt", shard_name_template="")
    )
    published = tmp_path / "sums-1970-01-01T00:00:00Z-1970-01-01T00:00:02Z-pane-0.txt"
    result = p.run()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if published.exists() and _pending(client, stream) == ["4500-0"]:
                break
            time.sleep(0.05)
    finally:
        result.cancel()
    assert published.read_text() == "k 3\n"
    assert _pending(client, stream) == ["4500-0"]  # window [4, 6) is still open
    assert sorted(os.listdir(tmp_path)) == [published.name]


class _ListReader(UnboundedReader):
    """Returns ``items`` in one poll, then nothing, then is done; appends each commit to
    ``log`` (a file: the source is pickled into the pipeline, so memory is not shared)."""

    def __init__(self, items: list[tuple[int, int]], log: str) -> None:
        self.items, self.log, self.polls = items, log, 0

    def poll(self, max_elements: int, timeout_s: float) -> list[Any]:
        self.polls += 1
        return [timestamped_us(v, t) for v, t in self.items] if self.polls == 1 else []

    def watermark_us(self) -> int:
        return self.items[-1][1] if self.polls else MIN_US

    def is_done(self) -> bool:
        return self.polls >= 3

    def checkpoint(self) -> Any:
        return ("all", len(self.items)) if self.polls else ("all", 0)

    def poll_positions(self) -> list[int]:
        return list(range(len(self.items))) if self.polls == 1 else []

    def checkpoint_at(self, position: int) -> Any:
        return ("at", position)

    def commit(self, checkpoint: Any) -> None:
        with open(self.log, "a") as f:
            f.write(f"{checkpoint[0]} {checkpoint[1]}\n")


class _ListSource(UnboundedSource):
    def __init__(self, items: list[tuple[int, int]], log: str) -> None:
        self.items, self.log = items, log

    def create_reader(self, checkpoint: Any = None) -> _ListReader:
        return _ListReader(self.items, self.log)


@pytest.mark.parametrize("restamp", [False, True])
def test_commits_stop_at_the_first_element_still_held(tmp_path: Path, restamp: bool) -> None:
    """One poll brings values at 0.5 s, 1.5 s (window [0, 2)) and 4.5 s (window [4, 6)); its
    last timestamp moves the watermark past 2 s, so [0, 2) fires and only the 4.5 s value stays
    held: the runner commits the reader's checkpoint after the second value (``at 1``), then
    everything when the run ends. A DoFn that gives elements new timestamps hides which input
    they came from, so then nothing of the poll is committed before it is all done."""
    log = tmp_path / "commits.txt"
    items = [(1, 500_000), (2, 1_500_000), (3, 4_500_000)]
    p = Pipeline(options=PipelineOptions(streaming=True))
    read = p | ReadUnbounded(_ListSource(items, str(log)))
    if restamp:
        read = read | Map(lambda v: TimestampedValue(v, 0.25 * v))
    _ = (
        read
        | Map(lambda v: ("k", v))
        | WindowInto(FixedWindows(2))
        | CombinePerKey(sum)
        | Map(lambda kv: None)
    )
    p.run().wait_until_finish()
    commits = log.read_text().splitlines()
    first_ones = [] if restamp else ["at 1"]
    assert commits[: len(first_ones)] == first_ones
    # the end of the run commits everything (a reader ignores a checkpoint it already has)
    assert set(commits[len(first_ones) :]) == {"all 3"}, commits


@pytest.mark.slow
@pytest.mark.parametrize("source", ["nats", "redis", "files"])
def test_killed_and_restarted_windowed_count_is_exactly_once(source: str, tmp_path: Path) -> None:
    """issue 13, the kill test in short form: ``read -> FixedWindows(2 s) -> sum per key ->
    WriteToText`` is SIGKILLed at random instants (seeded) and restarted while 300 messages
    arrive at 100/s; a last instance then runs until all is counted. Every message is counted
    exactly once (per key), nothing is left unacknowledged, and no restarted instance met a
    published pane it computed differently. The long form: benchmarks/stream_kill.py."""
    _need(source)
    kill = _campaign_module()
    figures = kill.campaign(
        source, messages=300, rate=100, kill_min=0.6, kill_max=1.2, workdir=tmp_path,
        seed=7, settle_s=60, max_kills=4,
    )  # fmt: skip
    log = (tmp_path / "children.log").read_text()[-2000:]
    assert figures.kills >= 1, log
    assert (figures.lost, figures.duplicated, figures.key_mismatches) == (0, 0, 0), (figures, log)
    assert figures.counted == 300
    assert figures.pending == 0, figures
    assert figures.refused == 0, log
