"""Kill campaign for streaming restarts: SIGKILL a streaming pipeline again and again, count loss.

The pipeline (run by ``child`` in its own process): read an unbounded source (NATS JetStream,
Redis Streams or a watched folder) of integers, key each by ``i % KEYS``, ``FixedWindows(2 s)``,
sum ``1`` per key, ``WriteToText`` one file per window pane. The driver publishes ``--messages``
integers at ``--rate`` per second while it kills the child at random instants (every
``--kill-min``..``--kill-max`` seconds) and starts it again; once everything is published it lets
a last child run until every message is counted and acknowledged (or ``--settle`` seconds pass),
then reads the output files back. The folder watch keeps its position in a checkpoint file.

Printed figures (one JSON line per run): kills, survived (messages counted at least once), lost
(published, never counted), counted (the sum of the output counts), duplicated (counted more than
once), pending (left unacknowledged on the broker), per-key
mismatches, and a ``refused`` count of children that stopped because a pane they recomputed
differed from the published one.

    python benchmarks/stream_kill.py --source nats --messages 3000 --rate 150

The test suite runs the same campaign in a short form (``tests/runners/test_streaming_kill.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

KEYS = 5
WINDOW_S = 2
NATS_URL = "nats://127.0.0.1:4222"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
SOURCES = ("nats", "redis", "files")
# Written by the child when a pane it recomputed differs from the published one.
REFUSED_EXIT = 3


# -- the pipeline (child process) -------------------------------------------------------------


def _key_one(value: Any) -> tuple[int, int]:
    return (int(value) % KEYS, 1)


def _redis_value(_entry_id: str, fields: dict[str, str]) -> int:
    return int(fields["n"])


def _format(kv: tuple[int, int]) -> str:
    return f"{kv[0]} {kv[1]}"


def build_pipeline(spec: dict[str, Any]) -> Any:
    """The campaign's pipeline for ``spec`` (the child's JSON argument)."""
    from headrace.io.textio import WriteToText
    from headrace.model.options import PipelineOptions
    from headrace.model.pipeline import Pipeline
    from headrace.model.transforms.core import CombinePerKey, Map, WindowInto
    from headrace.model.window import FixedWindows

    p = Pipeline(options=PipelineOptions(streaming=True))
    kind = spec["source"]
    if kind == "nats":
        from headrace.io.streaming import ReadFromNatsJetStream

        read: Any = ReadFromNatsJetStream(
            spec["subject"], stream=spec["stream"], durable="kill", servers=NATS_URL, parse=int
        )
    elif kind == "redis":
        from headrace.io.streaming import ReadFromRedisStreams

        read = ReadFromRedisStreams(
            spec["stream"], "kill", "c0", host=REDIS_HOST, port=REDIS_PORT,
            parse=_redis_value,
        )  # fmt: skip
    else:
        from headrace.io.streaming import ReadFromTextContinuously

        read = ReadFromTextContinuously(
            os.path.join(spec["watch"], "*.txt"),
            interval=0.1,
            watermark_lag=1.0,
            checkpoint_file=os.path.join(spec["out"], "..", "watch-checkpoint.json"),
        )
    _ = (
        p
        | "Read" >> read
        | "Key" >> Map(_key_one)
        | "Window" >> WindowInto(FixedWindows(WINDOW_S))
        | "Count" >> CombinePerKey(sum)
        | "Format" >> Map(_format)
        | "Write" >> WriteToText(os.path.join(spec["out"], "counts"), file_name_suffix=".txt")
    )
    return p


def child_main(spec: dict[str, Any]) -> int:
    p = build_pipeline(spec)
    try:
        p.run().wait_until_finish()
    except Exception as exc:
        print(f"child failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return REFUSED_EXIT if "already published" in str(exc) else 1
    return 0


# -- producers ---------------------------------------------------------------------------------


class Producer:
    """Publishes ``0..n-1`` at ``rate`` per second in a thread (see the subclasses)."""

    def __init__(self, n: int, rate: float) -> None:
        self.n, self.rate = n, rate
        self.sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self) -> None:
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _main(self) -> None:
        try:
            self.open()
            t0 = time.monotonic()
            tick = 0.05
            while self.sent < self.n:
                due = min(self.n, int((time.monotonic() - t0) * self.rate) + 1)
                if due > self.sent:
                    self.publish(range(self.sent, due))
                    self.sent = due
                time.sleep(tick)
        except BaseException as exc:
            self.error = exc
        finally:
            self.close()

    def open(self) -> None:
        pass

    def publish(self, values: range) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def pending(self) -> int:
        """Messages the broker still counts as unacknowledged or undelivered."""
        return 0

    def setup(self) -> dict[str, Any]:
        """Create what the source reads; return the spec entries for the child."""
        return {}

    def teardown(self) -> None:
        pass


class NatsProducer(Producer):
    def __init__(self, n: int, rate: float) -> None:
        super().__init__(n, rate)
        self.stream = f"HEADRACE_KILL_{uuid.uuid4().hex[:10].upper()}"
        self.subject = f"headrace.kill.{self.stream.lower()}"

    async def _with_js(self, fn: Any) -> Any:
        import nats

        nc = await nats.connect(NATS_URL)
        try:
            return await fn(nc.jetstream())
        finally:
            await nc.close()

    def setup(self) -> dict[str, Any]:
        subjects = [self.subject]
        asyncio.run(self._with_js(lambda js: js.add_stream(name=self.stream, subjects=subjects)))
        return {"stream": self.stream, "subject": self.subject}

    def teardown(self) -> None:
        asyncio.run(self._with_js(lambda js: js.delete_stream(self.stream)))

    def open(self) -> None:
        import nats

        self._loop = asyncio.new_event_loop()
        self._nc = self._loop.run_until_complete(nats.connect(NATS_URL))
        self._js = self._nc.jetstream()

    def publish(self, values: range) -> None:
        async def go() -> None:
            for i in values:
                await self._js.publish(self.subject, str(i).encode())

        self._loop.run_until_complete(go())

    def close(self) -> None:
        if getattr(self, "_loop", None) is not None:
            self._loop.run_until_complete(self._nc.close())
            self._loop.close()

    def pending(self) -> int:
        async def info(js: Any) -> int:
            try:
                c = await js.consumer_info(self.stream, "kill")
            except Exception:
                return self.n
            return int(c.num_pending or 0) + int(c.num_ack_pending or 0)

        return int(asyncio.run(self._with_js(info)))


class RedisProducer(Producer):
    def __init__(self, n: int, rate: float) -> None:
        super().__init__(n, rate)
        self.stream = f"headrace-kill-{uuid.uuid4().hex[:10]}"

    def _client(self) -> Any:
        import redis

        return redis.Redis(host=REDIS_HOST, port=REDIS_PORT)

    def setup(self) -> dict[str, Any]:
        return {"stream": self.stream}

    def teardown(self) -> None:
        c = self._client()
        c.delete(self.stream)
        c.close()

    def open(self) -> None:
        self._c = self._client()

    def publish(self, values: range) -> None:
        pipe = self._c.pipeline(transaction=False)
        for i in values:
            pipe.xadd(self.stream, {"n": str(i)})
        pipe.execute()

    def close(self) -> None:
        if getattr(self, "_c", None) is not None:
            self._c.close()

    def pending(self) -> int:
        c = self._client()
        try:
            groups = {g["name"]: g for g in c.xinfo_groups(self.stream)}
        except Exception:
            return self.n
        finally:
            c.close()
        g = groups.get(b"kill")
        if g is None:
            return self.n
        return int(g["pending"]) + int(g.get("lag") or 0)


class FileProducer(Producer):
    """Writes each batch as one file, renamed into place (the watcher's contract)."""

    def __init__(self, n: int, rate: float, folder: Path) -> None:
        super().__init__(n, rate)
        self.folder = folder
        self.files = 0

    def setup(self) -> dict[str, Any]:
        self.folder.mkdir(parents=True, exist_ok=True)
        return {"watch": str(self.folder)}

    def publish(self, values: range) -> None:
        name = f"batch-{self.files:06d}.txt"
        tmp = self.folder / f".{name}.tmp"
        tmp.write_text("".join(f"{i}\n" for i in values))
        os.replace(tmp, self.folder / name)
        self.files += 1


# -- the campaign ------------------------------------------------------------------------------


@dataclass
class Figures:
    source: str
    messages: int
    kills: int = 0
    survived: int = 0
    lost: int = 0
    counted: int = 0
    duplicated: int = 0
    pending: int = 0
    key_mismatches: int = 0
    refused: int = 0
    panes: int = 0
    seconds: float = 0.0


def read_counts(out: Path) -> tuple[Counter[int], int]:
    """Per-key totals over every published pane file, and the number of pane files."""
    counts: Counter[int] = Counter()
    files = sorted(glob.glob(str(out / "counts-*.txt")))
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, count = line.split()
                counts[int(key)] += int(count)
    return counts, len(files)


def _start_child(spec: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "ab") as f:
        return subprocess.Popen(
            [sys.executable, __file__, "child", json.dumps(spec)],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )


def campaign(
    source: str,
    messages: int,
    rate: float,
    kill_min: float,
    kill_max: float,
    workdir: Path,
    seed: int = 0,
    settle_s: float = 60.0,
    max_kills: int | None = None,
) -> Figures:
    """Run one campaign in ``workdir`` and return its figures."""
    rng = random.Random(seed)
    out = workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    log = workdir / "children.log"
    producer: Producer
    if source == "nats":
        producer = NatsProducer(messages, rate)
    elif source == "redis":
        producer = RedisProducer(messages, rate)
    elif source == "files":
        producer = FileProducer(messages, rate, workdir / "in")
    else:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    spec = {"source": source, "out": str(out), **producer.setup()}
    figures = Figures(source, messages)
    expected = Counter(i % KEYS for i in range(messages))
    t0 = time.monotonic()
    try:
        child = _start_child(spec, log)
        producer.start()
        while not producer.done() and (max_kills is None or figures.kills < max_kills):
            time.sleep(rng.uniform(kill_min, kill_max))
            if child.poll() is not None:
                figures.refused += child.returncode == REFUSED_EXIT
            else:
                child.send_signal(signal.SIGKILL)
                child.wait()
                figures.kills += 1
            child = _start_child(spec, log)
        producer.join()
        deadline = time.monotonic() + settle_s
        try:
            while time.monotonic() < deadline:
                counts, _ = read_counts(out)
                if counts == expected and producer.pending() == 0:
                    break
                if child.poll() is not None:
                    figures.refused += child.returncode == REFUSED_EXIT
                    break
                time.sleep(0.2)
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait()
        counts, figures.panes = read_counts(out)
        figures.counted = sum(counts.values())
        figures.lost = sum((expected - counts).values())
        figures.survived = messages - figures.lost
        figures.duplicated = sum((counts - expected).values())
        figures.key_mismatches = sum(1 for k in expected if counts[k] != expected[k])
        figures.pending = producer.pending()
    finally:
        producer.teardown()
    figures.seconds = round(time.monotonic() - t0, 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["child"]:
        return child_main(json.loads(args[1]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=SOURCES, action="append")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--kill-min", type=float, default=1.5)
    parser.add_argument("--kill-max", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle", type=float, default=90.0)
    ns = parser.parse_args(args)
    status = 0
    for source in ns.source or list(SOURCES):
        for run in range(ns.runs):
            with tempfile.TemporaryDirectory(prefix=f"headrace-kill-{source}-") as tmp:
                fig = campaign(
                    source, ns.messages, ns.rate, ns.kill_min, ns.kill_max, Path(tmp),
                    seed=ns.seed + run, settle_s=ns.settle,
                )  # fmt: skip
                print(json.dumps(asdict(fig)), flush=True)
                if fig.lost or fig.duplicated or fig.pending or fig.refused:
                    status = 1
                    print((Path(tmp) / "children.log").read_text()[-3000:], file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
