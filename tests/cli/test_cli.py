"""The ``headrace`` command line: run (in process and as a real subprocess), plan, version."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import headrace
from headrace.cli.main import app
from headrace.cli.progress import RunMonitor
from headrace.graph.nodes import PipelineGraph
from headrace.model.pipeline import Pipeline
from headrace.model.result import PipelineState
from headrace.runners import events
from headrace.runners.direct.runner import DirectRunner

runner = CliRunner()

WORD_COUNT = """
import sys
from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import CombinePerKey, Create, Map

out_path = sys.argv[1]


def pair(word):
    return (word, len(word))


def write(kv):
    with open(out_path, "a") as f:
        f.write(f"{kv[0]}={kv[1]}\\n")
    return kv


with Pipeline(options=PipelineOptions(sys.argv[2:])) as p:
    (
        p
        | "Make" >> Create(["a", "bb", "a", "ccc", "a"])
        | "Pair" >> Map(pair)
        | "Count" >> CombinePerKey(sum)
        | "Write" >> Map(write)
    )
print("script finished")
"""

FAILING = """
import sys
from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import Create, Map
def inverse(x):
    return 1 / x


with Pipeline(options=PipelineOptions(sys.argv[1:])) as p:
    p | "Make" >> Create([2, 0]) | "Invert" >> Map(inverse)
"""


def write_script(tmp_path: Path, text: str, name: str = "job.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def counts(path: Path) -> dict[str, int]:
    lines = path.read_text(encoding="utf-8").split()
    return {k: int(v) for k, v in (line.split("=") for line in lines)}


# -- version and help ----------------------------------------------------------------------------


def test_version_prints_headrace_and_python_versions():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.startswith(f"headrace {headrace.__version__} (Python 3.")


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "plan", "version"):
        assert f"  {command} " in result.stdout


def test_no_arguments_shows_help():
    result = runner.invoke(app, [])
    assert "Usage: headrace" in result.output
    assert "Commands:" in result.output


def test_run_help_explains_arguments_and_options():
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Usage: headrace run [OPTIONS] FILE [ARGS...]" in text
    assert "sys.argv set to [FILE, *ARGS]" in text
    assert "Put headrace's options before FILE; everything after FILE goes to the script." in text
    for option in ("--progress / --no-progress", "-q, --quiet", "--traceback", "-m, --module"):
        assert option in text


def test_plan_help_explains_json_and_pipeline():
    result = runner.invoke(app, ["plan", "-h"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "without running them" in text
    assert "--json" in text
    assert "--pipeline N" in text


# -- run: usage errors ---------------------------------------------------------------------------


def test_run_missing_file_names_the_path_and_exits_2(tmp_path):
    missing = tmp_path / "nowhere" / "job.py"
    result = runner.invoke(app, ["run", str(missing)])
    assert result.exit_code == 2
    assert f"Error: no such file: '{missing}'" in result.stderr


def test_plan_missing_file_exits_2(tmp_path):
    result = runner.invoke(app, ["plan", str(tmp_path / "missing.py")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr
    assert "missing.py" in result.stderr


def test_run_folder_without_main_exits_2(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path)])
    assert result.exit_code == 2
    assert "is a folder without a __main__.py" in result.stderr


def test_run_missing_module_exits_2():
    result = runner.invoke(app, ["run", "-m", "no_such_module_for_headrace"])
    assert result.exit_code == 2
    assert "no module named 'no_such_module_for_headrace'" in result.stderr


def test_unknown_option_before_file_is_a_usage_error(tmp_path):
    script = write_script(tmp_path, "print('hi')")
    result = runner.invoke(app, ["run", "--frobnicate", str(script)])
    assert result.exit_code == 2


# -- run: in process -----------------------------------------------------------------------------


def test_run_executes_the_script_with_its_arguments(tmp_path):
    script = write_script(tmp_path, WORD_COUNT)
    out = tmp_path / "counts.txt"
    saved_argv = list(sys.argv)
    result = runner.invoke(app, ["run", str(script), str(out)])
    assert result.exit_code == 0, result.output
    assert counts(out) == {"a": 3, "bb": 2, "ccc": 3}
    assert "script finished" in result.stdout
    # not a terminal and no --progress: no progress output at all
    assert result.stderr == ""
    # the process is as it was
    assert sys.argv == saved_argv
    assert DirectRunner.run_pipeline.__qualname__ == "DirectRunner.run_pipeline"


def test_arguments_after_file_belong_to_the_script(tmp_path):
    script = write_script(
        tmp_path,
        """
        import json, sys
        with open(sys.argv[1], "w") as f:
            json.dump(sys.argv, f)
        """,
    )
    out = tmp_path / "argv.json"
    result = runner.invoke(app, ["run", str(script), str(out), "--progress", "-q", "--", "x"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == [str(script), str(out), "--progress", "-q", "--", "x"]


def test_script_runs_as_main_with_its_folder_on_sys_path(tmp_path):
    (tmp_path / "helper_for_cli_test.py").write_text("VALUE = 42\n")
    script = write_script(
        tmp_path,
        """
        import sys
        import helper_for_cli_test
        assert __name__ == "__main__"
        with open(sys.argv[1], "w") as f:
            f.write(str(helper_for_cli_test.VALUE))
        """,
    )
    out = tmp_path / "value.txt"
    saved_path = list(sys.path)
    try:
        result = runner.invoke(app, ["run", str(script), str(out)])
    finally:
        sys.modules.pop("helper_for_cli_test", None)
    assert result.exit_code == 0, result.output
    assert out.read_text() == "42"
    assert sys.path == saved_path


def test_progress_prints_a_summary_table(tmp_path):
    script = write_script(tmp_path, WORD_COUNT)
    result = runner.invoke(app, ["run", "--progress", str(script), str(tmp_path / "o.txt")])
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert "pipeline 1: DONE in" in err
    for header in ("stage", "state", "in", "out", "seconds", "spills", "elements/s"):
        assert header in err
    lines = [line.split() for line in err.splitlines()]
    s0 = next(line for line in lines if line[:1] == ["S0"])
    s1 = next(line for line in lines if line[:1] == ["S1"])
    # S0 Make ... Pair  done  5 in  5 out ; S1 Count ... Write  done  3 in  3 out
    assert s0[1:4] == ["Make", "...", "Pair"]
    assert s0[4:7] == ["done", "5", "5"]
    assert s1[1:4] == ["Count", "...", "Write"]
    assert s1[4:7] == ["done", "3", "3"]
    # the summary is printed before the script's later output would be (on stdout here)
    assert "script finished" in result.stdout


STREAMING_COUNT = """
import sys
from headrace.beam.testing.test_stream import TestStream
from headrace.beam.transforms.window import FixedWindows, TimestampedValue
import headrace.beam as beam

stream = (
    TestStream()
    .add_elements([TimestampedValue(w, t) for t, w in enumerate(["a", "b", "a"])])
    .advance_watermark_to(30)
    .add_elements([TimestampedValue("c", 40)])
    .advance_watermark_to_infinity()
)
with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(streaming=True)) as p:
    (p | "Events" >> stream | "Window" >> beam.WindowInto(FixedWindows(10))
       | "Count" >> beam.combiners.Count.PerElement() | "Show" >> beam.Map(print))
"""


def test_progress_of_a_streaming_run_shows_its_steps_counts_and_watermarks(tmp_path):
    """A streaming run reports per-step counts and output watermarks through run events."""
    script = write_script(tmp_path, STREAMING_COUNT)
    result = runner.invoke(app, ["run", "--progress", str(script)])
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert "pipeline 1: DONE in" in err and "watermark" in err
    # S0 Events, S1 Window, S2 Count/...PairWithVoid, S3 Count/CombinePerKey, S4 Show; a long
    # name folds onto the next line of the table, the numbers stay on the row's first line.
    rows = {}
    for line in err.splitlines():
        words = line.split()
        if words and words[0][:1] == "S" and words[0][1:].isdigit() and "done" in words:
            at = words.index("done")
            rows[words[0]] = (" ".join(words[1:at]), words[at + 1 : at + 3], words[-2])
    assert rows["S0"] == ("Events", ["0", "4"], "end")  # a source: nothing in, four out
    assert rows["S3"][1] == ["4", "3"]  # (a, 2) (b, 1) then (c, 1)
    assert rows["S4"] == ("Show", ["3", "3"], "end")  # the watermark at the end of time


def test_quiet_wins_over_progress(tmp_path):
    script = write_script(tmp_path, WORD_COUNT)
    result = runner.invoke(app, ["run", "-q", "--progress", str(script), str(tmp_path / "o.txt")])
    assert result.exit_code == 0
    assert result.stderr == ""


def test_each_pipeline_gets_its_own_summary(tmp_path):
    script = write_script(
        tmp_path,
        """
        from headrace.model.pipeline import Pipeline
        from headrace.model.transforms.core import Create, Map

        for n in (1, 2):
            with Pipeline() as p:
                p | "Make" >> Create(list(range(n * 10))) | "Double" >> Map(lambda x: 2 * x)
        """,
    )
    result = runner.invoke(app, ["run", "--progress", str(script)])
    assert result.exit_code == 0, result.output
    assert "pipeline 1: DONE" in result.stderr
    assert "pipeline 2: DONE" in result.stderr
    assert result.stderr.index("pipeline 1") < result.stderr.index("pipeline 2")


def test_pipeline_failure_names_transform_element_and_line(tmp_path):
    script = write_script(tmp_path, FAILING)
    result = runner.invoke(app, ["run", str(script)])
    assert result.exit_code == 1
    err = result.stderr
    assert "Error: transform 'Invert' failed on element 0" in err
    assert "ZeroDivisionError: division by zero" in err
    assert f"at {script}, line 7, in inverse: return 1 / x" in err
    assert "run with --traceback" in err
    assert "Traceback (most recent call last)" not in err


def test_traceback_option_prints_the_traceback_without_cli_frames(tmp_path):
    script = write_script(tmp_path, FAILING)
    result = runner.invoke(app, ["run", "--traceback", str(script)])
    assert result.exit_code == 1
    err = result.stderr
    assert "Traceback (most recent call last)" in err
    assert f'File "{script}", line 7, in inverse' in err
    assert "headrace/cli/" not in err
    assert "runpy" not in err
    assert "Error: transform 'Invert' failed on element 0" in err
    assert "run with --traceback" not in err


def test_failure_with_progress_shows_the_failed_stage(tmp_path):
    script = write_script(tmp_path, FAILING)
    result = runner.invoke(app, ["run", "--progress", str(script)])
    assert result.exit_code == 1
    err = result.stderr
    assert "pipeline 1: FAILED" in err
    rows = [line.split() for line in err.splitlines() if line.split()[:1] == ["S0"]]
    assert rows and rows[0][4] == "failed"  # S0 Make ... Invert failed
    # the summary comes first, the error last
    assert err.index("pipeline 1: FAILED") < err.index("Error: transform 'Invert'")


def test_error_in_the_script_itself(tmp_path):
    script = write_script(
        tmp_path,
        """
        def main():
            raise ValueError("no input given")

        main()
        """,
    )
    result = runner.invoke(app, ["run", str(script)])
    assert result.exit_code == 1
    assert f"Error: '{script}' raised ValueError: no input given" in result.stderr
    assert f"at {script}, line 3, in main: raise ValueError" in result.stderr


def test_sys_exit_status_of_the_script_is_kept(tmp_path):
    script = write_script(tmp_path, "import sys\nsys.exit(3)\n")
    assert runner.invoke(app, ["run", str(script)]).exit_code == 3
    script = write_script(tmp_path, "import sys\nsys.exit('bad input')\n", "msg.py")
    result = runner.invoke(app, ["run", str(script)])
    assert result.exit_code == 1
    assert "bad input" in result.stderr
    script = write_script(tmp_path, "import sys\nsys.exit(0)\n", "ok.py")
    assert runner.invoke(app, ["run", str(script)]).exit_code == 0


def test_pipelines_the_script_did_not_wait_for_still_finish(tmp_path):
    script = write_script(
        tmp_path,
        """
        import sys, time
        from headrace.model.pipeline import Pipeline
        from headrace.model.transforms.core import Create, Map

        out = sys.argv[1]

        def slow_write(x):
            time.sleep(0.05)
            with open(out, "a") as f:
                f.write(f"{x}\\n")
            return x

        p = Pipeline()
        p | Create([1, 2, 3]) | "Write" >> Map(slow_write)
        p.run()  # no wait_until_finish
        """,
    )
    out = tmp_path / "out.txt"
    result = runner.invoke(app, ["run", "--progress", str(script), str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(out.read_text().split()) == ["1", "2", "3"]
    assert "pipeline 1: DONE" in result.stderr


def test_unwaited_pipeline_failure_is_reported(tmp_path):
    script = write_script(
        tmp_path,
        """
        from headrace.model.pipeline import Pipeline
        from headrace.model.transforms.core import Create, Map

        p = Pipeline()
        p | Create([1, 0]) | "Invert" >> Map(lambda x: 1 / x)
        p.run()
        """,
    )
    result = runner.invoke(app, ["run", str(script)])
    assert result.exit_code == 1
    assert "transform 'Invert' failed on element 0" in result.stderr


def test_failure_the_script_handles_is_not_an_error(tmp_path):
    script = write_script(
        tmp_path,
        """
        from headrace.model.pipeline import Pipeline
        from headrace.model.transforms.core import Create, Map

        p = Pipeline()
        p | Create([0]) | "Invert" >> Map(lambda x: 1 / x)
        try:
            p.run().wait_until_finish()
        except ZeroDivisionError:
            print("handled")
        """,
    )
    result = runner.invoke(app, ["run", "--progress", str(script)])
    assert result.exit_code == 0, result.output
    assert "handled" in result.stdout
    assert "pipeline 1: FAILED" in result.stderr
    assert "Error" not in result.stderr


def test_run_module(tmp_path, monkeypatch):
    package = tmp_path / "cli_test_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "job.py").write_text(
        textwrap.dedent(
            """
            import sys
            from headrace.model.pipeline import Pipeline
            from headrace.model.transforms.core import Create, Map

            assert __name__ == "__main__"
            def write(v):
                with open(sys.argv[1], "w") as f:
                    f.write(v)

            with Pipeline() as p:
                p | Create(["x"]) | Map(write)
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "module.txt"
    try:
        result = runner.invoke(app, ["run", "-m", "cli_test_pkg.job", str(out)])
        missing_main = runner.invoke(app, ["run", "-m", "cli_test_pkg"])
    finally:
        for name in [m for m in sys.modules if m.startswith("cli_test_pkg")]:
            del sys.modules[name]
    assert result.exit_code == 0, result.output
    assert out.read_text() == "x"
    assert missing_main.exit_code == 2
    assert "package without a __main__ module" in missing_main.stderr


# -- plan ----------------------------------------------------------------------------------------


def test_plan_lists_fused_stages_without_running(tmp_path):
    script = write_script(tmp_path, WORD_COUNT)
    out = tmp_path / "never.txt"
    result = runner.invoke(app, ["plan", str(script), str(out)])
    assert result.exit_code == 0, result.output
    assert not out.exists()  # nothing ran
    text = result.stdout
    assert text.splitlines()[0] == "S0: Make ... Pair"
    assert "fused:  Pair [ParDo]" in text
    assert "output: shuffle into Count (lifted combine)" in text
    assert "S1: Count ... Write  (after S0)" in text
    # the script's own prints go to stderr, keeping stdout for the plan
    assert "script finished" not in text
    assert "script finished" in result.stderr
    assert Pipeline.run.__qualname__ == "Pipeline.run"
    assert DirectRunner.run_pipeline.__qualname__ == "DirectRunner.run_pipeline"


def test_plan_json_is_the_pipeline_graph(tmp_path):
    script = write_script(tmp_path, WORD_COUNT)
    result = runner.invoke(app, ["plan", "--json", str(script), str(tmp_path / "o.txt")])
    assert result.exit_code == 0, result.output
    graph = PipelineGraph.from_json(result.stdout)
    labels = {t.label for t in graph.transforms.values()}
    assert {"Make", "Pair", "Count", "Write"} <= labels
    assert json.loads(result.stdout)["roots"]


MULTI = """
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import Create, GroupByKey, Map

with Pipeline() as p:
    p | "First" >> Create([1]) | "One" >> Map(str)
p2 = Pipeline()
p2 | "Second" >> Create([("k", 1)]) | "Group" >> GroupByKey()
result = p2.run()
assert result.wait_until_finish() == "DONE"
"""


def test_plan_shows_every_pipeline_of_the_script(tmp_path):
    script = write_script(tmp_path, MULTI)
    result = runner.invoke(app, ["plan", str(script)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Pipeline 1 of 2" in text
    assert "Pipeline 2 of 2" in text
    assert "S0: First ... One" in text
    assert "output: shuffle into Group (group by key)" in text


def test_plan_pipeline_option_picks_one(tmp_path):
    script = write_script(tmp_path, MULTI)
    result = runner.invoke(app, ["plan", "--pipeline", "2", str(script)])
    assert result.exit_code == 0, result.output
    assert "First" not in result.stdout
    assert "Group" in result.stdout
    as_json = runner.invoke(app, ["plan", "--json", str(script)])
    graphs = json.loads(as_json.stdout)
    assert isinstance(graphs, list) and len(graphs) == 2
    too_far = runner.invoke(app, ["plan", "--pipeline", "3", str(script)])
    assert too_far.exit_code == 2
    assert "ran 2 pipeline(s)" in too_far.stderr


def test_plan_of_a_script_that_runs_no_pipeline(tmp_path):
    script = write_script(tmp_path, "print('nothing here')\n")
    result = runner.invoke(app, ["plan", str(script)])
    assert result.exit_code == 1
    assert "ran no pipeline" in result.stderr


def test_plan_when_the_script_fails_after_building(tmp_path):
    script = write_script(
        tmp_path,
        """
        from headrace.model.pipeline import Pipeline
        from headrace.model.transforms.core import Create, Map

        with Pipeline() as p:
            p | "Make" >> Create([1]) | "Show" >> Map(str)
        open("/definitely/not/written/by/the/plan.txt").read()
        """,
    )
    result = runner.invoke(app, ["plan", str(script)])
    assert result.exit_code == 0, result.output
    assert "S0: Make ... Show" in result.stdout
    assert "Warning:" in result.stderr
    assert "FileNotFoundError" in result.stderr


def test_plan_when_the_script_fails_before_building(tmp_path):
    script = write_script(tmp_path, "raise RuntimeError('config missing')\n")
    result = runner.invoke(app, ["plan", str(script)])
    assert result.exit_code == 1
    assert "raised RuntimeError: config missing" in result.stderr


# -- the progress monitor ------------------------------------------------------------------------


class FakeResult:
    """The handle a RunSubmitted event carries: the monitor only waits for it and cancels it."""

    def __init__(self) -> None:
        self.waits = 0
        self.state = PipelineState.RUNNING

    def wait_until_finish(self, duration: float | None = None) -> PipelineState:
        self.waits += 1
        return self.state

    def cancel(self) -> PipelineState:
        self.state = PipelineState.CANCELLED
        return self.state


STAGES = ("Read ... Parse", "Group ... Write")


def submit(monitor: RunMonitor, run_id: str = "r1", streaming: bool = False) -> FakeResult:
    result = FakeResult()
    monitor.on_event(events.RunSubmitted(run_id, streaming, STAGES, result=result))
    monitor.on_event(events.RunStarted(run_id))
    return result


def test_monitor_draws_live_progress_from_run_events_on_a_terminal():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, color_system=None)
    monitor = RunMonitor(console, live=True, refresh_per_second=50)
    submit(monitor)
    monitor.on_event(events.StageStarted("r1", 0, STAGES[0], 2))
    monitor.on_event(events.StageUpdated("r1", 0, STAGES[0], 12_345, 0))
    monitor.on_event(events.StageUpdated("someone-else", 0, STAGES[0], 99_999, 0))
    deadline = time.monotonic() + 5
    while "12,345" not in buffer.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    drawn = buffer.getvalue()
    assert "pipeline 1: RUNNING" in drawn
    assert "S0 Read ... Parse" in drawn
    assert "running" in drawn
    assert "12,345" in drawn
    assert "99,999" not in drawn  # another run's events
    assert "pending" in drawn  # the second stage
    monitor.on_event(events.StageFinished("r1", 0, STAGES[0], "done", 12_345, 10, 0.5, 2, 0))
    monitor.on_event(events.StageStarted("r1", 1, STAGES[1], 1))
    monitor.on_event(events.StageFinished("r1", 1, STAGES[1], "done", 10, 3, 0.1, 1, 0))
    monitor.on_event(events.RunFinished("r1", "DONE"))
    # the watcher reports the run by itself, without a wait
    deadline = time.monotonic() + 5
    while "pipeline 1: DONE in" not in buffer.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    monitor.close()
    final = buffer.getvalue()
    assert final.count("pipeline 1: DONE in") == 1
    assert "24,690" in final  # 12,345 elements in 0.5 s
    assert not [t for t in threading.enumerate() if t.name == "headrace-progress"]


def test_monitor_reports_once_when_waited_and_shows_failed_stage():
    buffer = io.StringIO()
    monitor = RunMonitor(Console(file=buffer, width=120), live=False)
    result = submit(monitor)
    monitor.on_event(events.StageStarted("r1", 0, STAGES[0], 1))
    monitor.on_event(events.RunFinished("r1", "FAILED", "ValueError: bad"))
    result.wait_until_finish()
    result.wait_until_finish()
    monitor.close()
    text = buffer.getvalue()
    assert text.count("pipeline 1: FAILED") == 1
    assert result.waits == 2
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()[:1] == "S"}
    assert rows["S0"][4] == "failed"
    assert rows["S1"][4:6] == ["not", "run"]


def test_monitor_shows_a_streaming_runs_steps_with_counts_and_watermarks():
    buffer = io.StringIO()
    monitor = RunMonitor(Console(file=buffer, width=140), live=False)
    result = submit(monitor, streaming=True)
    monitor.on_event(events.StageUpdated("r1", 1, STAGES[1], 7, 2))
    monitor.on_event(events.Watermark("r1", STAGES[1], 1_700_000_000_123_000))
    assert [v.state for v in monitor.views[0].stages] == ["running", "running"]
    monitor.on_event(events.RunFinished("r1", "DONE"))
    result.wait_until_finish()
    monitor.close()
    text = buffer.getvalue()
    assert "watermark" in text and "spills" not in text
    row = next(line.split() for line in text.splitlines() if line.strip().startswith("S1"))
    assert row[4:7] == ["done", "7", "2"]
    assert "2023-11-14" in row and "22:13:20.123" in row


def test_quiet_monitor_prints_nothing_but_waits():
    monitor = RunMonitor(None)
    result = submit(monitor)
    monitor.on_event(events.RunFinished("r1", "DONE"))
    assert monitor.wait_all() is None
    assert monitor.wait_all() is None  # waited once: not again
    monitor.close()
    assert result.waits == 1
    assert monitor.results == [result]


def test_monitor_cancels_only_the_runs_still_going():
    monitor = RunMonitor(None)
    done, going = submit(monitor, "a"), submit(monitor, "b")
    monitor.on_event(events.RunFinished("a", "DONE"))
    monitor.cancel_running()
    assert (done.state, going.state) == (PipelineState.RUNNING, PipelineState.CANCELLED)


# -- a real subprocess ---------------------------------------------------------------------------


def headrace_command() -> list[str]:
    script = Path(sys.executable).with_name("headrace")
    assert script.exists(), "the headrace console script is missing: pip install -e ."
    return [str(script)]


def run_headrace(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [*headrace_command(), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_subprocess_run_with_progress_and_worker_processes(tmp_path):
    script = write_script(tmp_path, WORD_COUNT)
    out = tmp_path / "counts.txt"
    proc = run_headrace(
        "run",
        "--progress",
        "job.py",
        str(out),
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert counts(out) == {"a": 3, "bb": 2, "ccc": 3}
    assert "script finished" in proc.stdout
    assert "pipeline 1: DONE in" in proc.stderr
    assert "S0 Make ... Pair" in proc.stderr
    assert "S1 Count ... Write" in proc.stderr
    assert script.exists()


def test_subprocess_run_failure_exit_code_and_message(tmp_path):
    write_script(tmp_path, FAILING)
    proc = run_headrace("run", "job.py", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Error: transform 'Invert' failed on element 0" in proc.stderr
    assert "ZeroDivisionError: division by zero" in proc.stderr
    assert "at job.py, line 7, in inverse: return 1 / x" in proc.stderr
    assert proc.stdout == ""


def test_subprocess_failure_in_a_worker_process_points_at_user_code(tmp_path):
    write_script(tmp_path, FAILING)
    workers = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    proc = run_headrace("run", "job.py", *workers, cwd=tmp_path)
    assert proc.returncode == 1
    assert "Error: transform 'Invert' failed on element 0" in proc.stderr
    assert "at job.py, line 7, in inverse: return 1 / x" in proc.stderr
    assert "Traceback" not in proc.stderr
    full = run_headrace("run", "--traceback", "job.py", *workers, cwd=tmp_path)
    assert full.returncode == 1
    assert "Traceback in the worker process:" in full.stderr


def test_subprocess_plan_and_missing_file(tmp_path):
    write_script(tmp_path, WORD_COUNT)
    proc = run_headrace("plan", "job.py", "unused.txt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "lifted combine" in proc.stdout
    assert not (tmp_path / "unused.txt").exists()
    missing = run_headrace("run", "nope.py", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no such file: 'nope.py'" in missing.stderr


@pytest.mark.parametrize("flag", ["--no-progress", "-q"])
def test_subprocess_run_without_progress_is_silent(tmp_path, flag):
    write_script(tmp_path, WORD_COUNT)
    proc = run_headrace("run", flag, "job.py", "o.txt", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stderr == ""
