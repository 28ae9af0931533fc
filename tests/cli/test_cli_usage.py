"""User mistakes on the command line: ``--`` before a script's arguments, pipeline options that
are misspelled, ignored or wrong, and bad input to the main commands (never a raw traceback)."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import headrace.examples
from headrace.cli.main import app

runner = CliRunner()

WORDCOUNT = Path(headrace.examples.__file__).with_name("wordcount.py")

SHOW_ARGV = """
import json, sys
print(json.dumps(sys.argv[1:]))
"""

# A pipeline built from its own command line, as Beam scripts usually are.
SMALL = """
import sys
from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import Create, Map

with Pipeline(options=PipelineOptions(sys.argv[1:])) as p:
    p | "Make" >> Create([1, 2, 3]) | "Double" >> Map(lambda x: 2 * x)
print("script finished")
"""


def write_script(tmp_path: Path, text: str, name: str = "job.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _restore_headrace_logger():
    """``headrace run`` routes the ``headrace`` logger to its console while it runs; check that
    it leaves the logger as it found it."""
    logger = logging.getLogger("headrace")
    handlers, propagate = list(logger.handlers), logger.propagate
    yield
    assert logger.handlers == handlers
    assert logger.propagate == propagate


# -- 1. "--" separates headrace's arguments from the script's --------------------------------------


def test_double_dash_after_the_file_is_not_passed_to_the_script(tmp_path):
    """The README's ``headrace run my_pipeline.py -- --input data/*.csv``: the script must see
    ``--input ...``, as ``python my_pipeline.py --input ...`` would give it."""
    script = write_script(tmp_path, SHOW_ARGV)
    result = runner.invoke(app, ["run", str(script), "--", "--input", "a.csv", "b.csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == '["--input", "a.csv", "b.csv"]'


def test_only_the_first_double_dash_is_a_separator(tmp_path):
    script = write_script(tmp_path, SHOW_ARGV)
    result = runner.invoke(app, ["run", str(script), "--x", "--", "y"])
    assert result.stdout.strip() == '["--x", "--", "y"]'
    result = runner.invoke(app, ["plan", str(script), "--", "--", "z"])
    assert '["--", "z"]' in result.stderr  # plan sends the script's own output to stderr


def test_wordcount_example_reads_the_options_given_after_double_dash(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("b a b\n", encoding="utf-8")
    out = tmp_path / "counts"
    args = ["run", str(WORDCOUNT), "--", "--input", str(source), "--output", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    written = Path(f"{out}-00000-of-00001.txt").read_text(encoding="utf-8")
    assert sorted(written.splitlines()) == ["a: 1", "b: 2"]
    assert "generated" not in result.stderr  # it read --input instead of making text


# -- 2. options that would be silently ignored are reported ---------------------------------------


def test_misspelled_pipeline_option_is_a_warning_with_a_close_match(tmp_path):
    """Beam logs "Discarding unparseable args" (apache_beam/options/pipeline_options.py,
    get_all_options); headrace names each unknown option and the option probably meant."""
    script = write_script(tmp_path, SMALL)
    result = runner.invoke(app, ["run", str(script), "--direct_num_worker=2"])
    assert result.exit_code == 0, result.output
    assert (
        "Warning: Discarding unknown pipeline option --direct_num_worker=2: no PipelineOptions "
        "class declares it; did you mean --direct_num_workers?"
    ) in " ".join(result.stderr.split())
    assert "script finished" in result.stdout


def test_workers_without_multi_processing_warn_that_one_process_runs(tmp_path):
    script = write_script(tmp_path, SMALL)
    result = runner.invoke(app, ["run", str(script), "--direct_num_workers=2"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    assert "Warning: --direct_num_workers=2 is ignored with --direct_running_mode=in_memory" in text
    assert "runs in this one process" in text
    assert "--direct_running_mode=multi_processing" in text


def test_workers_on_a_streaming_run_warn_that_one_process_runs(tmp_path):
    script = write_script(tmp_path, SMALL)
    args = ["--direct_num_workers=2", "--direct_running_mode=multi_processing", "--streaming"]
    result = runner.invoke(app, ["run", str(script), *args])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    assert "Warning: --direct_num_workers=2 is ignored: this pipeline runs in streaming" in text
    assert "(--streaming)" in text


def test_workers_that_take_effect_give_no_warning(tmp_path):
    script = write_script(tmp_path, SMALL)
    args = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    result = runner.invoke(app, ["run", str(script), *args])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr


def test_runner_logs_the_one_process_warning_outside_the_cli(caplog):
    """Not only ``headrace run``: a script run by Python gets the warning through logging."""
    from headrace.model.options import PipelineOptions
    from headrace.model.pipeline import Pipeline
    from headrace.model.transforms.core import Create

    with caplog.at_level("WARNING", logger="headrace"):
        with Pipeline(options=PipelineOptions(["--direct_num_workers=3"])) as p:
            p | Create([1])
    (record,) = [r for r in caplog.records if "direct_num_workers" in r.getMessage()]
    assert record.name == "headrace.runners.direct.runner"
    assert "--direct_num_workers=3 is ignored" in record.getMessage()


# -- 3. wrong option values: one line, exit status 2 ----------------------------------------------


_BAD_VALUES = [
    ("--direct_running_mode=threads", "--direct_running_mode: invalid choice: 'threads'"),
    ("--direct_num_workers=zero", "--direct_num_workers: expected an integer >= 1"),
]
_UNKNOWN_RUNNER = ("--runner=FlinkRunner", "--runner: unknown runner 'FlinkRunner'")


# plan runs nothing, so it never resolves the runner: the unknown runner is a run-only case
@pytest.mark.parametrize(
    ("command", "flag", "expected"),
    [
        *[("run", *case) for case in [*_BAD_VALUES, _UNKNOWN_RUNNER]],
        *[("plan", *case) for case in _BAD_VALUES],
    ],
)
def test_bad_option_value_is_a_one_line_usage_error(tmp_path, command, flag, expected):
    script = write_script(tmp_path, SMALL)
    result = runner.invoke(app, [command, str(script), flag])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: Invalid pipeline option ")
    assert expected in lines[0]
    assert "Traceback" not in result.output


def test_bad_choice_lists_the_accepted_values(tmp_path):
    script = write_script(tmp_path, SMALL)
    result = runner.invoke(app, ["run", str(script), "--direct_running_mode=threads"])
    for accepted in ("in_memory", "multi_threading", "multi_processing"):
        assert accepted in result.stderr


def test_unknown_runner_lists_the_runner_that_exists(tmp_path):
    script = write_script(tmp_path, SMALL)
    result = runner.invoke(app, ["run", str(script), "--runner=FlinkRunner"])
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "headrace has DirectRunner" in message and "RayRunner" in message


def test_traceback_option_still_shows_the_traceback_of_an_option_error(tmp_path):
    script = write_script(tmp_path, SMALL)
    result = runner.invoke(app, ["run", "--traceback", str(script), "--runner=Nope"])
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("Error: Invalid pipeline option")


# -- no raw traceback for a user's mistake --------------------------------------------------------


@pytest.fixture
def store_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("HEADRACE_HOME", str(home))
    for name in ("HEADRACE_DB", "HEADRACE_OBJECTS"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.mark.parametrize(
    "args",
    [
        ["run", "missing.py"],
        ["plan", "-m", "no.such.module"],
        ["repo", "create", "bad name"],
        ["repo", "inspect", "nope"],
        ["commit", "inspect", "nope@master^3"],
        ["file", "get", "x@@:/a"],
        ["file", "list", "nope@master:/"],
        ["file", "put", "x@master:/a", "/no/such/source"],
        ["branch", "create", "nope@dev", "--head", "nope@master"],
        ["stage", "create", "-f", "no-such-spec.yaml"],
        ["stage", "inspect", "nope"],
        ["job", "inspect", "nope"],
        ["datum", "list", "--spec", "no-such-spec.yaml"],
        ["repo", "list", "--db", "nosuch://x"],
        ["repo", "list", "--objects", "nosuch://x"],
        ["gc", "--grace", "abc"],
    ],
    ids=" ".join,
)
def test_bad_input_gives_an_error_line_not_a_traceback(store_home, tmp_path, args):
    result = runner.invoke(app, args)
    assert result.exit_code in (1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "Error: " in result.stderr


@pytest.mark.parametrize("text", ["name: [", "name: only\n", "- a list\n"])
def test_bad_spec_file_is_an_error_line_naming_the_file(store_home, tmp_path, text):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    for args in (["stage", "create", "-f", str(spec)], ["datum", "list", "--spec", str(spec)]):
        result = runner.invoke(app, args)
        assert result.exit_code in (1, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert result.stderr.startswith("Error: ")
        assert "spec.yaml" in result.stderr


def test_workers_on_a_pipeline_that_streams_by_itself_name_the_reason(caplog):
    """A TestStream (an unbounded source) makes the direct runner stream, as Beam's does, in
    this one process: the warning says why, since no --streaming was given."""
    from headrace.model.options import PipelineOptions
    from headrace.model.pipeline import Pipeline
    from headrace.model.transforms.core import Map
    from headrace.testing.test_stream import TestStream

    workers = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    with caplog.at_level("WARNING", logger="headrace"):
        with Pipeline(options=PipelineOptions(workers)) as p:
            p | TestStream().add_elements([1]).advance_watermark_to_infinity() | Map(str)
    (message,) = [r.getMessage() for r in caplog.records if "direct_num_workers" in r.getMessage()]
    assert "runs in streaming mode (it reads an unbounded source)" in message
    assert "in this one process" in message
