"""The ``headrace`` command: ``run`` a pipeline script with live progress, ``plan`` it, ``version``.

Exit status of every command: 0 on success, 1 when the script or a pipeline fails, 2 for a usage
error (an unknown option, a missing file or module, a pipeline option with a bad value or an
unknown runner). ``headrace run`` passes on the status of a script that calls ``sys.exit``.

Warnings headrace logs while a script runs (an unknown pipeline option, worker settings that
cannot take effect) are printed as ``Warning: ...`` lines on stderr, above the live progress.

The store and stage commands live in the other modules of :mod:`headrace.cli`; the end of this
module adds them to :data:`app`. This module imports the SDK and the runner only inside ``run``
and ``plan``, so the store and stage commands start without them.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

import headrace
from headrace.cli import (
    commit_commands,
    daemon_command,
    file_commands,
    job_commands,
    maintenance_commands,
    repo_commands,
    serve_commands,
    stage_commands,
)
from headrace.cli.helptext import HeadraceTyper
from headrace.cli.script import (
    Target,
    TargetError,
    describe_failure,
    format_traceback,
    run_target,
)

if TYPE_CHECKING:
    from headrace.cli.hooks import CapturedPipeline

__all__ = ["app", "main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

app = HeadraceTyper(
    name="headrace",
    help="Run Beam-model pipelines with headrace and inspect how they will execute.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Options of headrace go before the script; everything after it belongs to the script.
_SCRIPT_CONTEXT = {"allow_interspersed_args": False}


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"headrace {headrace.__version__} (Python {platform.python_version()})")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the versions of headrace and Python, and exit.",
        ),
    ] = False,
) -> None:
    pass


FileArg = Annotated[
    str,
    typer.Argument(
        metavar="FILE",
        help="The pipeline script (a Python file), or with -m a module name.",
        show_default=False,
    ),
]
ArgsArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="ARGS...",
        help=(
            "Arguments for the script: it sees sys.argv == [FILE, *ARGS]. A '--' right after "
            "FILE only separates them and is not passed on."
        ),
        show_default=False,
    ),
]
ModuleOpt = Annotated[
    bool,
    typer.Option(
        "-m",
        "--module",
        help="FILE is a module name: run it as 'python -m FILE' would.",
    ),
]


def _script_args(args: Sequence[str] | None) -> list[str]:
    """The script's arguments: without the ``--`` that may separate them from FILE.

    >>> _script_args(["--", "--input", "a.csv"]), _script_args(["--input", "--", "x"])
    (['--input', 'a.csv'], ['--input', '--', 'x'])
    """
    args = list(args or ())
    return args[1:] if args[:1] == ["--"] else args


class _WarningPrinter(logging.Handler):
    """Prints headrace's logged warnings as ``Warning: <message>`` lines on a console."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not break the run
            self.handleError(record)
            return
        label = "Warning: " if record.levelno < logging.ERROR else "Error: "
        self.console.print(Text(label, style="yellow") + Text(message), soft_wrap=True)


@contextmanager
def _printed_warnings(console: Console) -> Iterator[None]:
    """Inside the block, headrace's log warnings go to ``console`` (and nowhere else)."""
    logger = logging.getLogger("headrace")
    handler = _WarningPrinter(console)
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved


def _is_options_error(error: BaseException) -> bool:
    from headrace.model.options import PipelineOptionsError

    return isinstance(error, PipelineOptionsError)


def _usage_failure(console: Console, error: BaseException, show_traceback: bool) -> NoReturn:
    """A pipeline option the script was given is wrong: one line, exit status 2."""
    if show_traceback:
        sys.stderr.write(format_traceback(error))
        sys.stderr.flush()
    _fail(console, str(error), EXIT_USAGE)


def _error_console() -> Console:
    return Console(stderr=True, highlight=False)


def _fail(console: Console, message: str, code: int) -> NoReturn:
    console.print(Text("Error: ", style="bold red") + Text(message), soft_wrap=True)
    raise typer.Exit(code)


def _report_failure(
    console: Console, exc: BaseException, target: Target, show_traceback: bool
) -> None:
    if show_traceback:
        sys.stderr.write(format_traceback(exc))
        sys.stderr.flush()
    first, *rest = describe_failure(exc, target)
    console.print(Text("Error: ", style="bold red") + Text(first), soft_wrap=True)
    for line in rest:
        console.print(Text(f"  {line}"), soft_wrap=True)
    if not show_traceback:
        console.print(Text("  (run with --traceback to see the full traceback)", style="dim"))


def _exit_status(exc: SystemExit, console: Console) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    console.print(Text(str(code)), soft_wrap=True)
    return EXIT_FAILURE


@app.command(
    context_settings=_SCRIPT_CONTEXT,
    help=(
        "Run a pipeline script and show the progress of the pipelines it runs.\n\n"
        "FILE runs as __main__ with sys.argv set to [FILE, *ARGS], so a script that reads "
        "PipelineOptions(sys.argv) gets its options. Put headrace's options before FILE; "
        "everything after FILE goes to the script.\n\n"
        "While a pipeline runs, each stage's elements in and out, elements per second and "
        "state are shown live on stderr when stderr is a terminal, and a summary table follows "
        "when it ends. On failure the failing transform, element and line of your code are "
        "printed and the exit status is 1."
    ),
)
def run(
    file: FileArg,
    args: ArgsArg = None,
    module: ModuleOpt = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help=(
                "Show progress even when stderr is not a terminal (then only the summary "
                "tables), or never.  [default: when stderr is a terminal]"
            ),
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option("-q", "--quiet", help="Show no progress and no summary; errors still show."),
    ] = False,
    show_traceback: Annotated[
        bool,
        typer.Option("--traceback", help="On failure, also print the full Python traceback."),
    ] = False,
    service: Annotated[
        str | None,
        typer.Option(
            "--service",
            envvar="HEADRACE_SERVICE",
            metavar="URL",
            help=(
                "Report the runs to the job service at URL (its states, step counts and logs "
                "show there, and it can cancel them); the token is $HEADRACE_TOKEN."
            ),
            show_default=False,
        ),
    ] = None,
) -> None:
    console = _error_console()
    target = Target(file, module)
    with reporting_to(service):
        _run(console, target, args, progress, quiet, show_traceback)


@contextmanager
def reporting_to(service: str | None) -> Iterator[None]:
    """Stream the runs of the block to the job service at ``service`` (if given)."""
    if not service:
        yield
        return
    import os

    from headrace.service.client import release, report_to

    def cancelled(run_id: str) -> None:
        _error_console().print(
            Text(f"Run {run_id} cancelled from the job service at {service}", style="yellow"),
            soft_wrap=True,
        )

    # the same reporter Pipeline.run uses for --service / $HEADRACE_SERVICE: reported once
    reporter = report_to(service, os.environ.get("HEADRACE_TOKEN"), on_cancel=cancelled)
    try:
        yield
    finally:
        release(reporter)


def _run(
    console: Console,
    target: Target,
    args: list[str] | None,
    progress: bool | None,
    quiet: bool,
    show_traceback: bool,
) -> None:
    from headrace.cli.hooks import observe_runs
    from headrace.cli.progress import RunMonitor

    show = not quiet and (progress if progress is not None else console.is_terminal)
    monitor = RunMonitor(console if show else None, live=show and console.is_terminal)
    error: BaseException | None = None
    status = 0
    try:
        with observe_runs(monitor), _printed_warnings(console):
            try:
                run_target(target, _script_args(args))
            except SystemExit as e:
                status = _exit_status(e, console)
            if status == 0:
                # Pipelines the script started without waiting for them still finish.
                error = monitor.wait_all()
    except TargetError as e:
        _fail(console, str(e), EXIT_USAGE)
    except KeyboardInterrupt:
        monitor.cancel_running()
        monitor.close()  # print the summaries before the message
        console.print(Text("Interrupted; running pipelines were cancelled.", style="yellow"))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as e:
        error = e
        monitor.cancel_running()
    finally:
        monitor.close()
    if error is not None and _is_options_error(error):
        _usage_failure(console, error, show_traceback)
    if error is not None:
        _report_failure(console, error, target, show_traceback)
        raise typer.Exit(EXIT_FAILURE)
    if status:
        raise typer.Exit(status)
    cancelled = [i for i, v in enumerate(monitor.views, 1) if v.state == "CANCELLED"]
    if cancelled:
        # As Beam's service runners: a run that did not end DONE is not a success, even when
        # something else (the job service, another thread) cancelled it.
        which = ", ".join(f"pipeline {i}" for i in cancelled)
        console.print(Text(f"Cancelled: {which} did not run to the end.", style="yellow"))
        raise typer.Exit(EXIT_FAILURE)


@app.command(
    context_settings=_SCRIPT_CONTEXT,
    help=(
        "Show how the pipelines of a script would execute, without running them.\n\n"
        "FILE runs as __main__ with sys.argv set to [FILE, *ARGS] (its own output goes to "
        "stderr), but each pipeline it runs is planned instead of run: headrace prints the "
        "fused stages, what each reads and where it shuffles (group by key or lifted combine). "
        "Code that reads what a pipeline wrote will find nothing."
    ),
)
def plan(
    file: FileArg,
    args: ArgsArg = None,
    module: ModuleOpt = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help=(
                "Print the pipeline graph as JSON (what a runner receives) instead of the "
                "stages; several pipelines give a JSON list."
            ),
        ),
    ] = False,
    number: Annotated[
        int | None,
        typer.Option(
            "--pipeline",
            metavar="N",
            min=1,
            help="Show only the N-th pipeline the script runs (counting from 1).",
            show_default=False,
        ),
    ] = None,
    show_traceback: Annotated[
        bool,
        typer.Option("--traceback", help="On failure, also print the full Python traceback."),
    ] = False,
) -> None:
    from headrace.cli.hooks import capture_pipelines

    console = _error_console()
    target = Target(file, module)
    error: BaseException | None = None
    status = 0
    with capture_pipelines() as captured, _printed_warnings(console):
        try:
            with redirect_stdout(sys.stderr):
                run_target(target, _script_args(args))
        except TargetError as e:
            _fail(console, str(e), EXIT_USAGE)
        except SystemExit as e:
            status = _exit_status(e, console)
        except Exception as e:
            error = e
    if error is not None and _is_options_error(error):
        _usage_failure(console, error, show_traceback)
    if not captured:
        if error is not None:
            _report_failure(console, error, target, show_traceback)
            raise typer.Exit(EXIT_FAILURE)
        if status:
            raise typer.Exit(status)
        _fail(
            console,
            f"{target.display} ran no pipeline; headrace plan sees a pipeline when the script "
            "runs it (p.run(), or the end of a 'with Pipeline() as p:' block)",
            EXIT_FAILURE,
        )
    if error is not None or status:
        what = f"raised {type(error).__name__}: {error}" if error else f"exited with {status}"
        console.print(
            Text(
                f"Warning: {target.display} {what} after running {len(captured)} pipeline(s); "
                "showing those (nothing ran under headrace plan)",
                style="yellow",
            ),
            soft_wrap=True,
        )
    chosen = list(enumerate(captured, 1))
    if number is not None:
        if number > len(captured):
            _fail(
                console,
                f"--pipeline {number}: {target.display} ran {len(captured)} pipeline(s)",
                EXIT_USAGE,
            )
        chosen = [chosen[number - 1]]
    if as_json:
        _print_json([c for _, c in chosen])
        return
    failed = _print_plans(console, chosen, len(captured))
    if failed:
        raise typer.Exit(EXIT_FAILURE)


def _print_json(chosen: list[CapturedPipeline]) -> None:
    if len(chosen) == 1:
        typer.echo(chosen[0].graph.to_json(indent=2))
    else:
        typer.echo(json.dumps([c.graph.to_dict() for c in chosen], indent=2))


def _print_plans(console: Console, chosen: list[tuple[int, CapturedPipeline]], total: int) -> bool:
    failed = False
    for position, (n, captured) in enumerate(chosen):
        if total > 1:
            if position:
                typer.echo("")
            typer.echo(f"Pipeline {n} of {total}")
        if captured.plan is not None:
            typer.echo(captured.plan.describe())
        else:
            failed = True
            err = captured.error
            console.print(
                Text("Error: ", style="bold red")
                + Text(f"pipeline {n} cannot be planned: {type(err).__name__}: {err}"),
                soft_wrap=True,
            )
    return failed


@app.command(help="Print the versions of headrace and Python.")
def version() -> None:
    typer.echo(f"headrace {headrace.__version__} (Python {platform.python_version()})")


# The store and stage commands; this order is the order of `headrace --help` (commands first,
# then groups): merge, fsck, gc, daemon; repo, branch, commit, file, stage, job, datum.
for _commands in (
    repo_commands,
    commit_commands,
    file_commands,
    maintenance_commands,
    stage_commands,
    job_commands,
    daemon_command,
    serve_commands,
):
    _commands.register(app)


def main() -> None:
    """Entry point of the ``headrace`` console script."""
    app(prog_name="headrace")
