"""What the ``stage``, ``job``, ``datum`` and ``daemon`` commands of ``headrace`` share: the
stage catalogue of the store, how jobs are shown, running a job now with a progress line, and the
helpers the store commands use (``commit wait`` and ``commit provenance`` through jobs).

Every stage-layer command takes the store options of :mod:`headrace.cli.common` (``--home``,
``--db``, ``--objects``, with ``$HEADRACE_HOME``, ``$HEADRACE_DB``, ``$HEADRACE_OBJECTS``):
stages, jobs and datums are kept in the store's own database. Listings and inspections take
``--json`` (the conventions of the store commands: snake_case keys, times ISO 8601 UTC, ``null``
for unknown). Job and datum ids may be given by a unique prefix of at least 4 characters; tables
show :data:`SHORT`.

Exit status: 0 on success; 1 when something is refused or fails (a spec that does not validate,
a missing input repo, an unknown stage or job, a job that does not end SUCCESS, a timeout);
2 for a usage error; 130 when interrupted. Errors print ``Error: <message>`` on stderr.

Running a job forks worker processes, so nothing here starts a thread: the progress line of
:func:`run_now` is redrawn from the job's progress callback, never by a refresh thread.

The stage layer (:mod:`headrace.stages`) is imported only inside the functions here, when a
command runs. What the commands do lives there (:mod:`headrace.stages.jobctl` controls jobs,
:mod:`headrace.stages.views` makes the ``--json`` data); the commands parse and print.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from headrace.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    emit_json,
    fail,
    local_time,
    new_table,
    opened_store,
    output_console,
    say,
)
from headrace.cli.common import error_console as _error_console  # the progress line's console
from headrace.store.errors import StoreError

if TYPE_CHECKING:
    from headrace.stages.catalog import Catalog, JobInfo
    from headrace.stages.jobs import ProgressFn
    from headrace.stages.spec import StageSpec
    from headrace.store.store import Store

__all__ = [
    "SHORT",
    "InputOpt",
    "NoProgressOpt",
    "datum_counts",
    "human_duration",
    "jobs_of_commits",
    "load_spec_file",
    "open_catalog",
    "opened_catalog",
    "parse_input_options",
    "print_jobs_table",
    "report_job",
    "run_now",
    "short_id",
    "stage_output_branch",
]

SHORT = 12  # characters of a job or datum id shown in tables

# -- options -------------------------------------------------------------------------------------

InputOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        "-i",
        metavar="NAME=COMMIT",
        help=(
            "Read input NAME at COMMIT (a commit id, a branch of its repo, or repo@ref) "
            "instead of the head of its branch. Repeat for several inputs."
        ),
        show_default=False,
    ),
]
NoProgressOpt = Annotated[
    bool,
    typer.Option(
        "--no-progress",
        help="Show no progress line (it shows only when stderr is a terminal anyway).",
    ),
]

# -- the catalogue and errors --------------------------------------------------------------------


def open_catalog(store: Store, create: bool = True) -> Catalog | None:
    """The stage catalogue of ``store``; with ``create=False``, None when the store has never
    held a stage (so read-only store commands do not add the stage tables)."""
    from headrace.stages.catalog import Catalog

    if not create:
        import sqlalchemy as sa

        with store.meta.read() as conn:
            if not sa.inspect(conn).has_table("stages"):
                return None
    return Catalog(store)


@contextmanager
def _stage_errors() -> Iterator[None]:
    """Turn what the stage layer raises for a user's mistake into ``Error: <message>``."""
    from headrace.stages.planning import JobError
    from headrace.stages.spec import SpecError

    try:
        yield
    except (typer.Exit, StoreError):  # typer.Exit is a RuntimeError: let it pass
        raise
    except (SpecError, JobError, LookupError, ValueError, RuntimeError) as e:
        fail(str(e))


@contextmanager
def opened_catalog(home: Path | None, db: str | None, objects: str | None) -> Iterator[Catalog]:
    """The opened store's catalogue; store and stage errors become exit statuses."""
    with opened_store(home, db, objects) as store, _stage_errors():
        catalog = open_catalog(store)
        assert catalog is not None
        yield catalog


# -- formatting ----------------------------------------------------------------------------------


def short_id(ident: str | None) -> str:
    """The first :data:`SHORT` characters of a job, datum or trace id (``-`` for none)."""
    return "-" if not ident else ident[:SHORT]


def human_duration(seconds: float | None) -> str:
    """A duration for people.

    >>> [human_duration(s) for s in (0.04, 12.34, 184, 7500, None)]
    ['0.04 s', '12.3 s', '3 min 04 s', '2 h 05 min', '-']
    """
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def datum_counts(job: JobInfo) -> str:
    """How many datums of ``job`` were processed, skipped, failed and recovered."""
    return (
        f"{job.total} datum(s): {job.processed} processed, {job.skipped} skipped, "
        f"{job.failed} failed, {job.recovered} recovered"
    )


def print_jobs_table(jobs: list[JobInfo], empty: str) -> None:
    """Print ``jobs`` as a table, or the line ``empty`` when there are none."""
    if not jobs:
        say(empty)
        return
    numbers = ("Proc", "Skip", "Fail", "Rec", "Total", "Duration")
    table = new_table(
        "Job", "Stage", "State", *numbers[:5], "Started", "Duration", "Trace", right=numbers
    )
    for j in jobs:
        table.add_row(
            short_id(j.id),
            j.stage,
            j.state,
            str(j.processed),
            str(j.skipped),
            str(j.failed),
            str(j.recovered),
            str(j.total),
            local_time(j.started_at),
            human_duration(j.seconds),
            short_id(j.trace),
        )
    output_console().print(table)


# -- loading specs, running jobs -----------------------------------------------------------------


def load_spec_file(path: Path) -> StageSpec:
    """The stage spec in the YAML or JSON file at ``path`` (the stage layer validates it); a
    Pachyderm pipeline spec's fields with no meaning here are named on stderr."""
    from headrace.stages.spec import load_spec

    def warn(message: str) -> None:
        _error_console().print(f"Warning: {path}: {message}", markup=False, highlight=False)

    return load_spec(path, warn=warn)


def parse_input_options(values: list[str] | None, spec: StageSpec) -> dict[str, str] | None:
    """``--input NAME=COMMIT`` options as a mapping (usage errors exit 2)."""
    if not values:
        return None
    from headrace.stages.views import input_repo_map

    names = list(input_repo_map(spec))
    out: dict[str, str] = {}
    for value in values:
        name, sep, commit = value.partition("=")
        name, commit = name.strip(), commit.strip()
        if not sep or not name or not commit:
            fail(f"--input {value!r}: write NAME=COMMIT, e.g. --input {names[0]}=dev", EXIT_USAGE)
        if name not in names:
            fail(
                f"--input {value!r}: stage {spec.name} has no input named {name!r} "
                f"(its inputs: {', '.join(names)})",
                EXIT_USAGE,
            )
        out[name] = commit
    return out


def _progress_line(job: JobInfo) -> Table:
    done = job.processed + job.skipped + job.failed + job.recovered
    grid = Table.grid(padding=(0, 1))
    grid.add_row(
        Text(f"{job.stage} job {short_id(job.id)}", style="bold"),
        Text(job.state.lower()),
        ProgressBar(total=job.total or None, completed=done, width=30),
        Text(f"{done}/{job.total} datums"),
        Text(f"{job.processed} processed, {job.skipped} skipped, {job.failed} failed", style="dim"),
        Text(human_duration(job.seconds)),
    )
    return grid


def run_now(
    catalog: Catalog, start: Callable[[ProgressFn], JobInfo], show_progress: bool
) -> JobInfo:
    """Run a job in this process by calling ``start`` with a progress callback (one of the
    functions of :mod:`headrace.stages.jobctl`), with a progress line on a terminal."""
    console = _error_console()
    show = show_progress and console.is_terminal
    seen: list[JobInfo] = []
    live: list[Live] = []

    def progress(job: JobInfo) -> None:
        seen[:] = [job]
        if not show:
            return
        if not live:  # no refresh thread: the job forks workers and must stay single-threaded
            live.append(
                Live(
                    console=console,
                    auto_refresh=False,
                    transient=True,
                    redirect_stdout=False,
                    redirect_stderr=False,
                )
            )
            live[0].start()
        live[0].update(_progress_line(job), refresh=True)

    try:
        try:
            return start(progress)
        finally:
            for shown in live:
                shown.stop()
    except KeyboardInterrupt:
        if seen:
            job = catalog.get_job(seen[0].id)
            fail(f"interrupted; job {job.id} of stage {job.stage} ended {job.state}",
                 EXIT_INTERRUPTED)  # fmt: skip
        fail("interrupted before the job started", EXIT_INTERRUPTED)


def report_job(job: JobInfo, as_json: bool) -> None:
    """Print how a job ended; exit 1 unless it ended SUCCESS."""
    from headrace.stages.catalog import SUCCESS
    from headrace.stages.views import job_view

    if as_json:
        emit_json(job_view(job))
    else:
        say(f"Job {job.id} of stage {job.stage}: {job.state} in {human_duration(job.seconds)}")
        say(f"  {datum_counts(job)}")
        if job.state == SUCCESS and job.output_commit:
            say(f"  output commit {job.stage}@{job.output_commit}")
    if job.state != SUCCESS:
        fail(f"job {job.id} of stage {job.stage} ended {job.state}: {job.reason or '-'}")
    if job.reason:  # a successful job with a reason: its egress failed
        _error_console().print(Text(f"Warning: {job.reason}", style="yellow"), soft_wrap=True)


# -- helpers for the store commands (commit wait, provenance) ------------------------------------


def stage_output_branch(store: Store, ref: str) -> tuple[Catalog, str] | None:
    """``(catalogue, "repo@branch")`` when ``ref`` names the output branch of a stage (and no
    commit id, ancestry or path), else None."""
    from headrace.store.refs import parse_ref

    r = parse_ref(ref)
    if r.is_commit or r.ancestry or r.path is not None:
        return None
    catalog = open_catalog(store, create=False)
    if catalog is None:
        return None
    for stage in catalog.list_stages():
        if stage.output_repo == r.repo and stage.spec.output_branch == r.ref:
            return catalog, f"{r.repo}@{r.ref}"
    return None


def jobs_of_commits(store: Store, commit_ids: list[str]) -> dict[str, JobInfo]:
    """The job that made each of ``commit_ids``, for those a stage job made."""
    from headrace.stages.views import jobs_of_commits as lookup

    return lookup(open_catalog(store, create=False), commit_ids)
