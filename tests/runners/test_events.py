"""Run events (issue 10, item 5): what a run reports to registered listeners.

The event set follows what Beam's job service publishes for a job (``JobService.GetStateStream``
state changes and ``GetMessageStream`` log messages in ``beam_job_api.proto``) and what Dataflow
shows per stage (element counts, watermarks per step): a state stream for the run, counts and
times for each stage, metric updates per finished task, watermarks for streaming steps, and log
records from user code with the step that emitted them.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from headrace.cli.main import app
from headrace.model.metrics import Metrics
from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import CombinePerKey, Create, Map, WindowInto
from headrace.model.window import FixedWindows, TimestampedValue
from headrace.runners import events
from headrace.testing.test_stream import TestStream
from headrace.testing.util import assert_that, equal_to


@pytest.fixture
def seen() -> Iterator[list[events.RunEvent]]:
    got: list[events.RunEvent] = []
    with events.listening(got.append):
        yield got


def _kinds(seen: list[events.RunEvent]) -> list[str]:
    return [type(e).__name__ for e in seen]


def _noisy(x: int) -> tuple[str, int]:
    Metrics.counter("test", "seen").inc()
    if x == 3:
        logging.getLogger("user.code").warning("odd element %s", x)
    return ("k" if x % 2 else "j", x)


def test_a_batch_run_reports_its_life_stages_tasks_metrics_and_logs(
    pipeline_options: PipelineOptions, seen: list[events.RunEvent]
) -> None:
    with Pipeline(options=pipeline_options) as p:
        pairs = p | "Nums" >> Create(list(range(10))) | "Noisy" >> Map(_noisy)
        assert_that(pairs | "Sum" >> CombinePerKey(sum), equal_to([("j", 20), ("k", 25)]))
    run_ids = {e.run_id for e in seen}
    assert len(run_ids) == 1
    kinds = _kinds(seen)
    assert kinds[:2] == ["RunSubmitted", "RunStarted"] and kinds[-1] == "RunFinished"
    submitted = seen[0]
    assert isinstance(submitted, events.RunSubmitted) and submitted.result is p.result
    assert not submitted.streaming and len(submitted.stages) >= 2
    finished = seen[-1]
    assert isinstance(finished, events.RunFinished) and finished.state == "DONE"
    stage_done = [e for e in seen if isinstance(e, events.StageFinished)]
    assert [e.name for e in stage_done] == list(submitted.stages)
    assert all(e.state == "done" for e in stage_done)
    assert stage_done[0].elements_in == 10
    started = [e.stage for e in seen if isinstance(e, events.StageStarted)]
    assert started == [e.stage for e in stage_done]
    tasks = [e for e in seen if isinstance(e, events.TaskFinished)]
    total = sum(
        n for t in tasks for (step, _, name), n in t.metrics.counters.items() if step == "Noisy"
    )
    assert total == 10
    logs = [e for e in seen if isinstance(e, events.LogRecord)]
    assert [(e.step, e.level, e.logger, e.message) for e in logs] == [
        ("Noisy", logging.WARNING, "user.code", "odd element 3")
    ]


def _fail(x: int) -> int:
    if x == 2:
        raise ValueError("no twos")
    return x


def test_a_failed_run_finishes_failed_with_the_error_and_the_failed_stage(
    seen: list[events.RunEvent],
) -> None:
    p = Pipeline()
    _ = p | Create([1, 2, 3]) | "Fails" >> Map(_fail)
    with pytest.raises(ValueError, match="no twos"):
        p.run().wait_until_finish()
    finished = seen[-1]
    assert isinstance(finished, events.RunFinished) and finished.state == "FAILED"
    assert finished.error is not None and "no twos" in finished.error
    failed = [e for e in seen if isinstance(e, events.StageFinished)]
    assert [e.state for e in failed] == ["failed"]


def test_a_listener_that_raises_does_not_break_the_run(caplog: pytest.LogCaptureFixture) -> None:
    def bad(event: events.RunEvent) -> None:
        raise RuntimeError("listener bug")

    with events.listening(bad), Pipeline() as p:
        assert_that(p | Create([1, 2]) | Map(lambda x: x + 1), equal_to([2, 3]))
    assert p.result is not None and p.result.state.name == "DONE"
    assert "run-event listener failed" in caplog.text


def test_a_streaming_run_reports_step_counts_and_watermarks(seen: list[events.RunEvent]) -> None:
    stream = (
        TestStream()
        .add_elements([TimestampedValue(("a", 1), 1), TimestampedValue(("a", 2), 2)])
        .advance_watermark_to(20)
        .add_elements([TimestampedValue(("b", 5), 25)])
        .advance_watermark_to_infinity()
    )
    with Pipeline() as p:
        sums = (
            p
            | "Events" >> stream
            | "Window" >> WindowInto(FixedWindows(10))
            | "Sum" >> CombinePerKey(sum)
        )
        assert_that(sums, equal_to([("a", 3), ("b", 5)]))
    submitted = seen[0]
    assert isinstance(submitted, events.RunSubmitted) and submitted.streaming
    assert "Sum" in submitted.stages
    marks = [e for e in seen if isinstance(e, events.Watermark) and e.step == "Events"]
    assert marks, "no watermark event for the source step"
    assert [m.watermark_us for m in marks] == sorted(m.watermark_us for m in marks)
    assert seen[-1].state == "DONE"  # type: ignore[attr-defined]
    assert p.result is not None
    rows = {row.name: row for row in p.result.progress}  # type: ignore[attr-defined]
    assert rows["Window"].elements_in == 3 and rows["Window"].state == "done"
    assert rows["Events"].watermark_us is not None


def _log_in_stream(kv: tuple[str, int]) -> tuple[str, int]:
    logging.getLogger("user.stream").error("pair %s", kv[0])
    return kv


def test_a_streaming_run_reports_user_log_records_with_their_step(
    seen: list[events.RunEvent],
) -> None:
    stream = TestStream().add_elements([("a", 1)]).advance_watermark_to_infinity()
    with Pipeline() as p:
        _ = p | "Events" >> stream | "Loud" >> Map(_log_in_stream)
    logs = [e for e in seen if isinstance(e, events.LogRecord)]
    assert [(e.step, e.level, e.logger, e.message) for e in logs] == [
        ("Loud", logging.ERROR, "user.stream", "pair a")
    ]
    assert logs[0].run_id == seen[0].run_id


STREAMING_SCRIPT = """
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import CombinePerKey, WindowInto
from headrace.model.window import FixedWindows, TimestampedValue
from headrace.testing.test_stream import TestStream

stream = (
    TestStream()
    .add_elements([TimestampedValue(("a", 1), 1), TimestampedValue(("a", 2), 2)])
    .advance_watermark_to_infinity()
)
with Pipeline() as p:
    windowed = p | "Events" >> stream | "Window" >> WindowInto(FixedWindows(10))
    _ = windowed | "Sum" >> CombinePerKey(sum)
"""


def test_headrace_run_shows_the_steps_of_a_streaming_pipeline(tmp_path: Path) -> None:
    """Before run events, ``headrace run --progress`` showed an empty table for streaming."""
    script = tmp_path / "stream.py"
    script.write_text(textwrap.dedent(STREAMING_SCRIPT), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--progress", str(script)])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stderr.splitlines()]
    window = next(row for row in rows if row[1:2] == ["Window"])
    assert window[2:5] == ["done", "2", "2"]
