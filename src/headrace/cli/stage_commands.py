"""The stage commands of ``headrace``: ``stage``, ``job``, ``datum`` and ``daemon``.

``stage`` creates, updates, lists, inspects, stops, starts, runs and deletes stages (specs read
from YAML or JSON files, see :mod:`headrace.stages.spec`); ``job`` lists, inspects, waits for and
stops the runs of stages and shows their logs; ``datum`` lists a job's datums, previews the
datums of a spec without running anything, and restarts a failed job; ``daemon`` runs stages
whenever their inputs change or their cron inputs tick.

Every command takes the store options of the store commands (``--home``, ``--db``,
``--objects``, with ``$HEADRACE_HOME``, ``$HEADRACE_DB``, ``$HEADRACE_OBJECTS``): stages, jobs and
datums are kept in the store's own database. Listings and inspections take ``--json`` (the
conventions of the store commands: snake_case keys, times ISO 8601 UTC, ``null`` for unknown).
Job and datum ids may be given by a unique prefix of at least 4 characters; tables show 12.

Exit status: 0 on success; 1 when something is refused or fails (a spec that does not validate,
a missing input repo, an unknown stage or job, a job that does not end SUCCESS, a timeout);
2 for a usage error; 130 when interrupted. Errors print ``Error: <message>`` on stderr.

Running a job forks worker processes, so nothing here starts a thread: the progress line of
``stage run`` is redrawn from the job's progress callback, never by a refresh thread.

:func:`register` adds the commands to the ``headrace`` application. The stage layer is imported
only when one of these commands runs.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from headrace.cli.store_commands import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    DbOpt,
    HomeOpt,
    JsonOpt,
    LimitOpt,
    ObjectsOpt,
    _emit_json,
    _error_console,
    _fail,
    _fields,
    _local_time,
    _out,
    _say,
    _store,
    _sub_app,
    _table,
    _utc,
)
from headrace.store.errors import StoreError

if TYPE_CHECKING:
    from headrace.stages.catalog import Catalog, DatumRecord, JobInfo, StageInfo
    from headrace.stages.datums import Datum
    from headrace.stages.spec import StageSpec
    from headrace.store.store import Store

__all__ = [
    "datum_app",
    "job_app",
    "job_summary",
    "jobs_of_commits",
    "open_catalog",
    "register",
    "stage_app",
    "stage_output_branch",
]

SHORT = 12  # characters of a job or datum id shown in tables
FILES_SHOWN = 5  # files of a datum listed in a preview table

stage_app = _sub_app("stage", "Create, update, list, inspect, run, stop, start and delete stages.")
job_app = _sub_app("job", "List, inspect, wait for and stop jobs (runs of stages); show logs.")
datum_app = _sub_app(
    "datum", "List the datums of a job or of a spec (a preview), restart failed datums."
)

# -- options -------------------------------------------------------------------------------------

SpecFileOpt = Annotated[
    Path,
    typer.Option(
        "-f",
        "--file",
        metavar="SPEC",
        exists=True,
        dir_okay=False,
        help="The stage spec, a YAML or JSON file.",
        show_default=False,
    ),
]
StageArg = Annotated[str, typer.Argument(metavar="STAGE", help="The stage.", show_default=False)]
JobArg = Annotated[
    str,
    typer.Argument(
        metavar="JOB", help="The job id (or a unique prefix of it).", show_default=False
    ),
]
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
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout", min=0, metavar="SECONDS", help="Give up after this long.", show_default=False
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
    from headrace.stages.jobs import JobError
    from headrace.stages.spec import SpecError

    try:
        yield
    except (typer.Exit, StoreError):  # typer.Exit is a RuntimeError: let it pass
        raise
    except (SpecError, JobError, LookupError, ValueError, RuntimeError) as e:
        _fail(str(e))


@contextmanager
def _catalog(home: Path | None, db: str | None, objects: str | None) -> Iterator[Catalog]:
    """The opened store's catalogue; store and stage errors become exit statuses."""
    with _store(home, db, objects) as store, _stage_errors():
        catalog = open_catalog(store)
        assert catalog is not None
        yield catalog


# -- formatting ----------------------------------------------------------------------------------


def _short(ident: str | None) -> str:
    return "-" if not ident else ident[:SHORT]


def _duration(seconds: float | None) -> str:
    """A duration for people.

    >>> _duration(0.04), _duration(12.34), _duration(184), _duration(7500), _duration(None)
    ('0.04 s', '12.3 s', '3 min 04 s', '2 h 05 min', '-')
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


def _counts(job: JobInfo) -> str:
    return (
        f"{job.total} datum(s): {job.processed} processed, {job.skipped} skipped, "
        f"{job.failed} failed, {job.recovered} recovered"
    )


def _last_line(text: str) -> str:
    """The last non-empty line of an error: the exception of a traceback."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _input_repos(spec: StageSpec) -> dict[str, str]:
    """``input name -> repo`` of every input (cron inputs: their tick repo)."""
    from headrace.stages.jobs import input_repos

    return {name: repo for name, repo, _ in input_repos(spec)}


def _inputs_text(spec: StageSpec) -> str:
    from headrace.stages.jobs import input_repos

    return ", ".join(
        repo if branch == "master" else f"{repo}@{branch}" for _, repo, branch in input_repos(spec)
    )


def _job_json(job: JobInfo) -> dict[str, Any]:
    repos = _input_repos(job.spec)
    return {
        "id": job.id,
        "stage": job.stage,
        "state": job.state,
        "version": job.version,
        "trace": job.trace,
        "inputs": [
            {"name": name, "repo": repos.get(name), "commit": commit}
            for name, commit in sorted(job.inputs.items())
        ],
        "output_commit": job.output_commit,
        "total": job.total,
        "processed": job.processed,
        "skipped": job.skipped,
        "failed": job.failed,
        "recovered": job.recovered,
        "created_at": _utc(job.created_at),
        "started_at": _utc(job.started_at),
        "finished_at": _utc(job.finished_at),
        "seconds": job.seconds,
        "reason": job.reason,
        "owner": job.owner,
        "heartbeat": _utc(job.heartbeat),
        "stop_requested": job.stop_requested,
    }


def _stage_json(stage: StageInfo, last: JobInfo | None) -> dict[str, Any]:
    from headrace.stages.jobs import input_repos

    return {
        "name": stage.name,
        "state": "stopped" if stage.stopped else "running",
        "version": stage.version,
        "output_repo": stage.output_repo,
        "output_branch": stage.spec.output_branch,
        "input_repos": [{"name": n, "repo": r, "branch": b} for n, r, b in input_repos(stage.spec)],
        "spec_file": stage.spec_file,
        "created_at": _utc(stage.created_at),
        "updated_at": _utc(stage.updated_at),
        "last_job": None if last is None else {"id": last.id, "state": last.state},
    }


def _spec_dict(spec: StageSpec) -> dict[str, Any]:
    """The spec as data, with any password in its egress URL hidden."""
    from headrace.stages.spec import hide_password

    data = spec.to_dict()
    egress = data.get("egress")
    if isinstance(egress, str):
        data["egress"] = hide_password(egress)
    elif isinstance(egress, dict) and isinstance(egress.get("sql"), str):
        data["egress"] = {**egress, "sql": hide_password(egress["sql"])}
    return data


def _jobs_table(jobs: list[JobInfo], empty: str) -> None:
    if not jobs:
        _say(empty)
        return
    numbers = ("Proc", "Skip", "Fail", "Rec", "Total", "Duration")
    table = _table(
        "Job", "Stage", "State", *numbers[:5], "Started", "Duration", "Trace", right=numbers
    )
    for j in jobs:
        table.add_row(
            _short(j.id),
            j.stage,
            j.state,
            str(j.processed),
            str(j.skipped),
            str(j.failed),
            str(j.recovered),
            str(j.total),
            _local_time(j.started_at),
            _duration(j.seconds),
            _short(j.trace),
        )
    _out().print(table)


def _datum_inputs(record: DatumRecord) -> str:
    return ", ".join(f"{name}:{path}" for name, path in record.input_paths())


def _datum_json(record: DatumRecord, with_log: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "datum_id": record.datum_id,
        "state": record.state,
        "hash": record.hash,
        "inputs": [{"name": n, "path": p} for n, p in record.input_paths()],
        "outputs": [{"path": p, "hash": h, "size_bytes": s} for p, h, s in record.output_files()],
        "attempts": record.attempts,
        "seconds": record.seconds,
        "error": record.error,
    }
    if with_log:
        out["log"] = record.log
    return out


# -- shared by several commands ------------------------------------------------------------------


def _load_spec(path: Path) -> StageSpec:
    from headrace.stages.spec import load_spec

    return load_spec(path)


def _check_spec(store: Store, catalog: Catalog, spec: StageSpec, source: Path) -> None:
    """Refuse a spec whose pfs input repos are missing or that would close a cycle of stages
    (cron input repos are made by the daemon: not checked)."""
    from headrace.stages.catalog import StageInfo
    from headrace.stages.daemon import stage_order
    from headrace.stages.spec import PfsInput, iter_inputs
    from headrace.store.errors import RepoNotFound

    for path, node in iter_inputs(spec.input):
        if not isinstance(node, PfsInput):
            continue
        try:
            store.inspect_repo(node.repo)
        except RepoNotFound:
            _fail(
                f"{source}: {path}.repo: repo {node.repo!r} does not exist; create it "
                f"(headrace repo create {node.repo}) or correct the spec"
            )
    others = [s for s in catalog.list_stages() if s.name != spec.name]
    new = StageInfo(spec.name, spec, spec.version, None, 0.0, 0.0, False)
    try:
        stage_order([*others, new])
    except ValueError as e:
        _fail(f"{source}: stage {spec.name!r} would make the stages read each other: {e}")


def _parse_inputs(values: list[str] | None, spec: StageSpec) -> dict[str, str] | None:
    """``--input NAME=COMMIT`` options as a mapping (usage errors exit 2)."""
    if not values:
        return None
    names = list(_input_repos(spec))
    out: dict[str, str] = {}
    for value in values:
        name, sep, commit = value.partition("=")
        name, commit = name.strip(), commit.strip()
        if not sep or not name or not commit:
            _fail(f"--input {value!r}: write NAME=COMMIT, e.g. --input {names[0]}=dev", EXIT_USAGE)
        if name not in names:
            _fail(
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
        Text(f"{job.stage} job {_short(job.id)}", style="bold"),
        Text(job.state.lower()),
        ProgressBar(total=job.total or None, completed=done, width=30),
        Text(f"{done}/{job.total} datums"),
        Text(f"{job.processed} processed, {job.skipped} skipped, {job.failed} failed", style="dim"),
        Text(_duration(job.seconds)),
    )
    return grid


def _run_now(
    catalog: Catalog,
    stage: StageInfo,
    commits: Mapping[str, str] | None,
    trace: str | None,
    show_progress: bool,
) -> JobInfo:
    """Run a job of ``stage`` in this process, with a progress line on a terminal."""
    from headrace.stages.jobs import run_job

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
            return run_job(catalog, stage, commits=commits, trace=trace, progress=progress)
        finally:
            for shown in live:
                shown.stop()
    except KeyboardInterrupt:
        if seen:
            job = catalog.get_job(seen[0].id)
            _fail(f"interrupted; job {job.id} of stage {job.stage} ended {job.state}",
                  EXIT_INTERRUPTED)  # fmt: skip
        _fail("interrupted before the job started", EXIT_INTERRUPTED)


def _report_job(job: JobInfo, as_json: bool) -> None:
    """Print how a job ended; exit 1 unless it ended SUCCESS."""
    from headrace.stages.catalog import SUCCESS

    if as_json:
        _emit_json(_job_json(job))
    else:
        _say(f"Job {job.id} of stage {job.stage}: {job.state} in {_duration(job.seconds)}")
        _say(f"  {_counts(job)}")
        if job.state == SUCCESS and job.output_commit:
            _say(f"  output commit {job.stage}@{job.output_commit}")
    if job.state != SUCCESS:
        _fail(f"job {job.id} of stage {job.stage} ended {job.state}: {job.reason or '-'}")
    if job.reason:  # a successful job with a reason: its egress failed
        _error_console().print(Text(f"Warning: {job.reason}", style="yellow"), soft_wrap=True)


# -- stage ---------------------------------------------------------------------------------------


@stage_app.command(
    "create",
    help=(
        "Create a stage from a spec file. The spec is validated, every pfs input repo must "
        "exist (cron input repos are made by the daemon), and the output repo, named after "
        "the stage, is created if missing. The spec file's folder is put on sys.path for the "
        "transform."
    ),
)
def stage_create(
    spec_file: SpecFileOpt,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    from headrace.store.errors import RepoNotFound

    with _catalog(home, db, objects) as catalog:
        store = catalog.store
        spec = _load_spec(spec_file)
        try:
            catalog.get_stage(spec.name)
        except LookupError:
            pass
        else:
            _fail(
                f"{spec_file}: stage {spec.name!r} already exists; change it with "
                f"'headrace stage update -f {spec_file}'"
            )
        _check_spec(store, catalog, spec, spec_file)
        try:
            store.inspect_repo(spec.name)
            made_repo = False
        except RepoNotFound:
            store.create_repo(spec.name, f"output of stage {spec.name}")
            made_repo = True
        info = catalog.put_stage(spec, str(spec_file.resolve()))
    if as_json:
        _emit_json(_stage_json(info, None))
        return
    repo = f"repo {spec.name}" + ("" if made_repo else " (it existed already)")
    _say(f"Created stage {spec.name} (version {info.version[:8]}), writing to {repo}")
    _say(
        f"It runs when its inputs change while 'headrace daemon' runs, or now with: "
        f"headrace stage run {spec.name}"
    )


@stage_app.command(
    "update",
    help=(
        "Replace a stage's spec with the spec file's (the stage is named in the file). A changed "
        "input, transform or salt changes the spec version: the next job then runs every datum "
        "again. Other changes (parallelism, retries, timeouts, egress, description) keep the "
        "version, so datums already processed stay skipped. To rerun every datum without "
        "another change, change the salt."
    ),
)
def stage_update(
    spec_file: SpecFileOpt,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _catalog(home, db, objects) as catalog:
        spec = _load_spec(spec_file)
        old = catalog.get_stage(spec.name)
        _check_spec(catalog.store, catalog, spec, spec_file)
        info = catalog.put_stage(spec, str(spec_file.resolve()), update=True)
        last = catalog.last_job(info.name)
    if as_json:
        _emit_json(_stage_json(info, last))
        return
    if old.version != info.version:
        _say(
            f"Updated stage {info.name}: version {old.version[:8]} -> {info.version[:8]}; "
            "its next job runs every datum again"
        )
    else:
        _say(
            f"Updated stage {info.name}: version {info.version[:8]} unchanged; datums already "
            "processed stay skipped"
        )


@stage_app.command("list", help="List the stages: state, spec version, last job, input repos.")
def stage_list(
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _catalog(home, db, objects) as catalog:
        rows = [(s, catalog.last_job(s.name)) for s in catalog.list_stages()]
    if as_json:
        _emit_json([_stage_json(s, last) for s, last in rows])
        return
    if not rows:
        _say("No stages; create one with: headrace stage create -f SPEC.yaml")
        return
    table = _table("Stage", "State", "Version", "Last job", "Job state", "Inputs")
    for s, last in rows:
        table.add_row(
            s.name,
            "stopped" if s.stopped else "running",
            s.version[:8],
            _short(last.id if last else None),
            last.state if last else "-",
            _inputs_text(s.spec),
        )
    _out().print(table)


@stage_app.command(
    "inspect", help="Show a stage: its spec (as YAML), version, output repo and last jobs."
)
def stage_inspect(
    name: StageArg,
    jobs: Annotated[
        int, typer.Option("--jobs", min=0, metavar="N", help="Show the last N jobs.")
    ] = 5,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    import yaml

    with _catalog(home, db, objects) as catalog:
        stage = catalog.get_stage(name)
        recent = catalog.list_jobs(stage.name, limit=jobs) if jobs else []
    if as_json:
        out = _stage_json(stage, recent[0] if recent else None)
        out["spec"] = _spec_dict(stage.spec)
        out["jobs"] = [_job_json(j) for j in recent]
        _emit_json(out)
        return
    _fields([
        ("Stage", stage.name),
        ("State", "stopped" if stage.stopped else "running"),
        ("Version", stage.version),
        ("Output repo", f"{stage.output_repo}@{stage.spec.output_branch}"),
        ("Inputs", _inputs_text(stage.spec)),
        ("Spec file", stage.spec_file or "-"),
        ("Created", _local_time(stage.created_at)),
        ("Updated", _local_time(stage.updated_at)),
    ])  # fmt: skip
    _say("")
    _say("Spec:")
    text = yaml.safe_dump(_spec_dict(stage.spec), sort_keys=False, allow_unicode=True)
    _say("".join(f"  {line}\n" for line in text.splitlines()).rstrip("\n"))
    if jobs:
        _say("")
        _say(f"Last jobs (newest first, at most {jobs}):")
        _jobs_table(recent, "  none yet")


@stage_app.command(
    "delete",
    help=(
        "Delete a stage with its jobs and datums and, unless --keep-repo, its output repo (and "
        "the tick repos of its cron inputs). Refused while one of its jobs runs, and (without "
        "--keep-repo) while another stage reads its output."
    ),
)
def stage_delete(
    name: StageArg,
    keep_repo: Annotated[
        bool, typer.Option("--keep-repo", help="Keep the output repo and its commits.")
    ] = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    from headrace.stages.catalog import CREATED, RUNNING
    from headrace.stages.daemon import orphaned
    from headrace.stages.jobs import cron_repo, input_repos, kill_job
    from headrace.stages.spec import CronInput, iter_inputs
    from headrace.store.errors import RepoNotFound

    with _catalog(home, db, objects) as catalog:
        store = catalog.store
        stage = catalog.get_stage(name)
        live = catalog.list_jobs(stage.name, states=(CREATED, RUNNING))
        for job in live:
            if not orphaned(job):
                _fail(
                    f"stage {stage.name} has a running job {job.id}; stop it first "
                    f"(headrace job stop {_short(job.id)})"
                )
        repos = [] if keep_repo else [stage.output_repo]
        if not keep_repo:
            for other in catalog.list_stages():
                if other.name != stage.name and any(
                    repo == stage.output_repo for _, repo, _ in input_repos(other.spec)
                ):
                    _fail(
                        f"stage {other.name} reads repo {stage.output_repo}, the output of "
                        f"stage {stage.name}; delete {other.name} first, or keep the repo "
                        "with --keep-repo"
                    )
            repos += [
                cron_repo(stage.name, node.name)
                for _, node in iter_inputs(stage.spec.input)
                if isinstance(node, CronInput)
            ]
        for job in live:  # interrupted jobs: remove their open output commits
            kill_job(catalog, job.id, f"stage {stage.name} was deleted")
        catalog.delete_stage(stage.name)
        deleted = []
        for repo in repos:
            try:
                store.delete_repo(repo)
            except RepoNotFound:
                continue
            deleted.append(repo)
    if keep_repo:
        _say(f"Deleted stage {stage.name}; its repo {stage.output_repo} is kept")
    elif deleted:
        _say(
            f"Deleted stage {stage.name} and repo(s) {', '.join(deleted)}; 'headrace gc' frees "
            "the space their files used"
        )
    else:
        _say(f"Deleted stage {stage.name} (its repo {stage.output_repo} did not exist)")


@stage_app.command(
    "stop",
    help=(
        "Stop a stage: the daemon no longer runs it (a job already running goes on; stop it "
        "with 'headrace job stop'). 'headrace stage run' still runs it."
    ),
)
def stage_stop(
    name: StageArg,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _catalog(home, db, objects) as catalog:
        catalog.set_stopped(name, True)
    _say(f"Stopped stage {name}: the daemon no longer runs it")


@stage_app.command(
    "start", help="Start a stopped stage: the daemon runs it again when its inputs change."
)
def stage_start(
    name: StageArg,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _catalog(home, db, objects) as catalog:
        catalog.set_stopped(name, False)
    _say(f"Started stage {name}: the daemon runs it when its inputs change")


@stage_app.command(
    "run",
    help=(
        "Run a job of a stage now, in this process, on the heads of its input branches (or the "
        "commits --input names). Datums processed before with the same content are skipped. "
        "Prints how the job ended; the exit status is 1 unless it ended SUCCESS."
    ),
)
def stage_run(
    name: StageArg,
    inputs: InputOpt = None,
    no_progress: NoProgressOpt = False,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _catalog(home, db, objects) as catalog:
        stage = catalog.get_stage(name)
        commits = _parse_inputs(inputs, stage.spec)
        job = _run_now(catalog, stage, commits, None, not no_progress)
    _report_job(job, as_json)


# -- job -----------------------------------------------------------------------------------------


@job_app.command("list", help="List jobs, newest first.")
def job_list(
    stage: Annotated[
        str | None,
        typer.Option(
            "--stage", "-s", metavar="STAGE", help="Only this stage's jobs.", show_default=False
        ),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            metavar="STATE",
            help="Only jobs in this state: created, running, success, failure, killed, unrunnable.",
            show_default=False,
        ),
    ] = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    from headrace.stages.catalog import JOB_STATES

    states = None
    if state is not None:
        if state.upper() not in JOB_STATES:
            _fail(
                f"--state {state!r}: use one of {', '.join(s.lower() for s in JOB_STATES)}",
                EXIT_USAGE,
            )
        states = (state.upper(),)
    with _catalog(home, db, objects) as catalog:
        if stage is not None:
            catalog.get_stage(stage)
        jobs = catalog.list_jobs(stage, states=states, limit=limit)
    if as_json:
        _emit_json([_job_json(j) for j in jobs])
    else:
        _jobs_table(jobs, "No jobs" + (f" of stage {stage}" if stage else ""))


@job_app.command(
    "inspect", help="Show a job: state, input commits, output commit, datum counts, reason."
)
def job_inspect(
    job_id: JobArg,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
    if as_json:
        _emit_json(_job_json(job))
        return
    repos = _input_repos(job.spec)
    inputs = "\n".join(
        f"{name}: {repos.get(name, '?')}@{commit}" for name, commit in sorted(job.inputs.items())
    )
    _fields([
        ("Job", job.id),
        ("Stage", job.stage),
        ("State", job.state),
        ("Version", job.version),
        ("Trace", job.trace),
        ("Inputs", inputs or "-"),
        ("Output commit", f"{job.stage}@{job.output_commit}" if job.output_commit else "-"),
        ("Datums", _counts(job)),
        ("Created", _local_time(job.created_at)),
        ("Started", _local_time(job.started_at)),
        ("Finished", _local_time(job.finished_at)),
        ("Duration", _duration(job.seconds)),
        ("Owner", job.owner or "-"),
        ("Heartbeat", _local_time(job.heartbeat)),
        ("Stop asked", "yes" if job.stop_requested else "no"),
        ("Reason", job.reason or "-"),
    ])  # fmt: skip


@job_app.command(
    "logs",
    help=(
        "Show what the datums a job ran printed (stdout and stderr) and their errors. "
        "Skipped datums ran in an earlier job and have no log here."
    ),
)
def job_logs(
    job_id: JobArg,
    datum: Annotated[
        str | None,
        typer.Option(
            "--datum",
            "-d",
            metavar="DATUM",
            help="Only this datum (id or prefix).",
            show_default=False,
        ),
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only the failed datums.")] = False,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    from headrace.stages.catalog import DATUM_FAILED, DATUM_SKIPPED

    with _catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
        if datum is not None:
            records = [catalog.get_datum(job.id, datum)]
            if failed and records[0].state != DATUM_FAILED:
                records = []
        else:
            states = (DATUM_FAILED,) if failed else None
            records = [
                r
                for r in catalog.datums(job.id, states=states, with_logs=True)
                if r.state != DATUM_SKIPPED
            ]
    if as_json:
        _emit_json([_datum_json(r, with_log=True) for r in records])
        return
    if not records:
        what = "failed datum" if failed else "datum that ran"
        _say(f"Job {job.id} of stage {job.stage} has no {what} ({_counts(job)})")
        if job.reason:
            _say(f"Reason: {job.reason}")
        return
    out = _out()
    for i, r in enumerate(records):
        if i:
            out.print()
        out.print(
            Text(
                f"== datum {r.datum_id} ({_datum_inputs(r)}): {r.state}, {r.attempts} "
                f"attempt(s), {_duration(r.seconds)}",
                style="bold",
            ),
            soft_wrap=True,
        )
        log = r.log.rstrip("\n")
        out.print(Text(log if log else "(no output)", style="" if log else "dim"), soft_wrap=True)
        if r.error:
            out.print(Text("error:", style="bold red"))
            out.print(Text(r.error.rstrip("\n")), soft_wrap=True)


@job_app.command(
    "wait",
    help="Wait until a job ends; print how. Exit status 1 unless it ended SUCCESS, or on timeout.",
)
def job_wait(
    job_id: JobArg,
    timeout: TimeoutOpt = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    from headrace.stages.daemon import orphaned

    deadline = None if timeout is None else time.monotonic() + timeout
    with _catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
        while not job.done:
            if deadline is not None and time.monotonic() >= deadline:
                hint = ""
                if orphaned(job):
                    hint = (
                        "; no process runs it any more: 'headrace daemon' resumes it, "
                        f"'headrace job stop {_short(job.id)}' ends it"
                    )
                _fail(
                    f"job {job.id} of stage {job.stage} is still {job.state} after "
                    f"{timeout:g} s{hint}"
                )
            time.sleep(0.2)
            job = catalog.get_job(job.id)
    _report_job(job, as_json)


@job_app.command(
    "stop",
    help=(
        "Stop a job: a running job notices within about a second, stops its datums and ends "
        "KILLED (nothing of it is committed). A job no process runs any more is marked KILLED "
        "at once."
    ),
)
def job_stop(
    job_id: JobArg,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    from headrace.stages.catalog import KILLED
    from headrace.stages.daemon import orphaned
    from headrace.stages.jobs import kill_job

    with _catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
        if job.done:
            _fail(f"job {job.id} of stage {job.stage} already ended {job.state}; nothing to stop")
        catalog.set_job(job.id, stop_requested=True)
        if not orphaned(job):
            _say(
                f"Asked job {job.id} of stage {job.stage} to stop; it ends KILLED within about "
                f"a second (headrace job wait {_short(job.id)})"
            )
            return
        job = kill_job(
            catalog, job.id, "stopped by request (headrace job stop) while no process ran it"
        )
    if job.state == KILLED:
        _say(f"Job {job.id} of stage {job.stage} had no process running it: marked KILLED")
    else:
        _say(
            f"Job {job.id} of stage {job.stage} has no process running it but its output "
            "commit is finished; 'headrace daemon' records it as ended"
        )


# -- datum ---------------------------------------------------------------------------------------


@datum_app.command(
    "list",
    help=(
        "List the datums of a job (id, state, inputs, attempts, seconds, error), or with "
        "--spec FILE, preview the datums a spec makes of the heads of its input branches "
        "without running or creating anything: each is new, changed or unchanged compared "
        "with the last successful job of the stage of that name (if there is one)."
    ),
)
def datum_list(
    job_id: Annotated[
        str | None,
        typer.Argument(
            metavar="JOB", help="The job id (or a prefix); or give --spec.", show_default=False
        ),
    ] = None,
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="Preview the datums of this spec instead of listing a job's.",
            show_default=False,
        ),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            metavar="STATE",
            help="Only datums in this state (success, skipped, failed, recovered); with "
            "--spec: new, changed or unchanged.",
            show_default=False,
        ),
    ] = None,
    inputs: InputOpt = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    if (job_id is None) == (spec_file is None):
        _fail("give either a JOB or --spec FILE", EXIT_USAGE)
    if spec_file is not None:
        _preview(spec_file, inputs, state, as_json, (home, db, objects))
        return
    assert job_id is not None
    if inputs:
        _fail("--input goes with --spec (a job's input commits are fixed)", EXIT_USAGE)
    states = None
    if state is not None:
        known = ("success", "skipped", "failed", "recovered")
        if state.lower() not in known:
            _fail(f"--state {state!r}: use one of {', '.join(known)}", EXIT_USAGE)
        states = (state.lower(),)
    with _catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
        records = catalog.datums(job.id, states=states)
    if as_json:
        _emit_json([_datum_json(r) for r in records])
        return
    if not records:
        _say(f"Job {job.id} of stage {job.stage} has no datums" + (f" {state}" if state else ""))
        return
    table = _table(
        "Datum", "State", "Inputs", "Attempts", "Seconds", "Error", right=("Attempts", "Seconds")
    )
    for r in records:
        table.add_row(
            _short(r.datum_id),
            r.state,
            _datum_inputs(r),
            str(r.attempts),
            f"{r.seconds:.2f}",
            _last_line(r.error) or "-",
        )
    _out().print(table)


def _preview(
    spec_file: Path,
    inputs: list[str] | None,
    state: str | None,
    as_json: bool,
    location: tuple[Path | None, str | None, str | None],
) -> None:
    """``datum list --spec``: the spec's datums and how each compares with the last job."""
    from headrace.stages.catalog import SUCCESS
    from headrace.stages.jobs import plan_datums, resolve_inputs

    statuses = ("new", "changed", "unchanged")
    if state is not None and state.lower() not in statuses:
        _fail(f"--state {state!r}: with --spec use one of {', '.join(statuses)}", EXIT_USAGE)
    with _catalog(*location) as catalog:
        spec = _load_spec(spec_file)
        commits = resolve_inputs(catalog.store, spec, _parse_inputs(inputs, spec))
        datums, base = plan_datums(catalog, spec, commits)
        stage = next((s for s in catalog.list_stages() if s.name == spec.name), None)
        exists = stage is not None
        last = catalog.last_job(spec.name, states=(SUCCESS,)) if exists else None
    rows: list[tuple[Datum, str]] = []
    for d in datums:
        old = base.get(d.id)
        rows.append((d, "new" if old is None else "unchanged" if old == d.hash else "changed"))
    counts = {s: sum(1 for _, st in rows if st == s) for s in statuses}
    ids = {d.id for d in datums}
    removed = sorted(i for i in base if i not in ids)
    if state is not None:
        rows = [(d, st) for d, st in rows if st == state.lower()]
    if as_json:
        _emit_json({
            "stage": spec.name,
            "stage_exists": exists,
            "compared_with_job": last.id if last and base else None,
            "version": spec.version,
            "inputs": dict(sorted(commits.items())),
            "counts": {**counts, "removed": len(removed)},
            "datums": [
                {
                    "datum_id": d.id, "status": st, "hash": d.hash,
                    "inputs": [
                        {"name": p.name, "path": p.path,
                         "files": [{"path": f.path, "size_bytes": f.size, "hash": f.hash}
                                   for f in p.files]}
                        for p in d.inputs
                    ],
                }
                for d, st in rows
            ],
            "removed": removed,
        })  # fmt: skip
        return
    if not exists:
        _say(f"No stage {spec.name} yet: every datum is new")
    elif last is not None and base:
        _say(f"Compared with job {_short(last.id)}, the last successful job of stage {spec.name}")
        if stage is not None and stage.version != spec.version:
            _say(
                f"(the spec's version {spec.version[:8]} differs from the stage's "
                f"{stage.version[:8]}: every datum's hash changes)"
            )
    else:
        _say(f"Stage {spec.name} has no successful job yet: every datum is new")
    if rows:
        table = _table("Datum", "Status", "Inputs", "Files")
        for d, st in rows:
            files = [f.path for p in d.inputs for f in p.files]
            shown = "\n".join(files[:FILES_SHOWN])
            if len(files) > FILES_SHOWN:
                shown += f"\n(+{len(files) - FILES_SHOWN} more)"
            table.add_row(
                _short(d.id), st, ", ".join(f"{p.name}:{p.path}" for p in d.inputs), shown or "-"
            )
        _out().print(table)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    tail = f"; {len(removed)} removed since that job" if removed else ""
    _say(f"{len(datums)} datum(s): {summary}{tail}")
    if spec.reprocess == "every_job":
        _say("(reprocess: every_job: a job runs every datum, whatever its status)")


@datum_app.command(
    "restart",
    help=(
        "Run the failed datums of a FAILURE or KILLED job again: a new job of the stage runs on "
        "the same input commits, and the datums that succeeded (in that job or the last "
        "successful one) are reused, not rerun, while the spec version is the same. Prints "
        "how the new job ended; the exit status is 1 unless it ended SUCCESS."
    ),
)
def datum_restart(
    job_id: JobArg,
    no_progress: NoProgressOpt = False,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    from headrace.stages.catalog import FAILURE, KILLED

    with _catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
        if job.state not in (FAILURE, KILLED) or not job.inputs:
            how = "is still " if not job.done else "ended "
            _fail(
                f"job {job.id} of stage {job.stage} {how}{job.state}; only a job that ended "
                "FAILURE or KILLED after reading its inputs can be restarted"
            )
        stage = catalog.get_stage(job.stage)
        if stage.version != job.version:
            _error_console().print(
                Text(
                    f"Note: stage {stage.name}'s spec changed since job {_short(job.id)} "
                    f"(version {job.version[:8]} -> {stage.version[:8]}): every datum runs",
                    style="yellow",
                ),
                soft_wrap=True,
            )
        new = _run_now(catalog, stage, job.inputs, job.trace, not no_progress)
    if not as_json:
        _say(f"Restarted job {job.id} as job {new.id}")
    _report_job(new, as_json)


# -- daemon --------------------------------------------------------------------------------------


def _log(message: str) -> None:
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    sys.stdout.write(f"{stamp} {message}\n")
    sys.stdout.flush()


class _Stopper:
    """SIGINT/SIGTERM handling of the daemon: a first signal stops it after the running pass
    (at once when idle), a second one interrupts the running job."""

    def __init__(self) -> None:
        self.requested = False
        self.in_pass = False
        self._pid = os.getpid()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked worker: behave as if no handler were set
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.requested and self.in_pass:
            raise KeyboardInterrupt
        self.requested = True
        if self.in_pass:
            name = signal.Signals(signum).name
            # os.write: printing from a signal handler could re-enter the stdout buffer
            _raw(f"{name}: stopping after the running job; send it again to stop that job now\n")

    @contextmanager
    def installed(self) -> Iterator[None]:
        saved = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.requested:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))


def _raw(text: str) -> None:
    try:
        os.write(sys.stdout.fileno(), text.encode())
    except (OSError, ValueError, AttributeError):  # no file descriptor (captured output)
        pass


def daemon_command(
    poll: Annotated[
        float,
        typer.Option(
            "--poll",
            min=0.05,
            metavar="SECONDS",
            help="Look for new input commits and due cron ticks this often.",
        ),
    ] = 1.0,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Make one pass and exit (exit status 1 if a job in it did not end SUCCESS).",
        ),
    ] = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    from headrace.stages.catalog import SUCCESS
    from headrace.stages.daemon import Daemon

    with _catalog(home, db, objects) as catalog:
        daemon = Daemon(catalog, poll=poll, log=_log)
        if once:
            ended = daemon.step()
            bad = [j for j in ended if j.state != SUCCESS]
            if bad:
                _fail(
                    f"{len(bad)} job(s) did not end SUCCESS: "
                    + ", ".join(f"{j.id} of stage {j.stage} ({j.state})" for j in bad)
                )
            return
        _serve(daemon, poll)


def _serve(daemon: Any, poll: float) -> None:
    """Step ``daemon`` every ``poll`` seconds until SIGINT or SIGTERM."""
    stopper = _Stopper()
    with stopper.installed():
        _log(f"daemon started (pid {os.getpid()}, a pass every {poll:g} s); stop it with "
             "Ctrl-C or SIGTERM")  # fmt: skip
        while not stopper.requested:
            started = time.monotonic()
            stopper.in_pass = True
            try:
                daemon.step()
            except KeyboardInterrupt:
                _log("interrupted in the middle of a pass; the running job ended as recorded")
                break
            except Exception as e:  # a pass that fails is logged; the next one may succeed
                _log(f"pass failed: {type(e).__name__}: {e}")
            finally:
                stopper.in_pass = False
            stopper.sleep(max(0.0, poll - (time.monotonic() - started)))
        _log("daemon stopped")


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
    catalog = open_catalog(store, create=False)
    if catalog is None or not commit_ids:
        return {}
    wanted = set(commit_ids)
    out: dict[str, JobInfo] = {}
    for trace in set(catalog.traces(commit_ids).values()):
        for job in catalog.list_jobs(trace=trace):
            if job.output_commit in wanted:
                out[job.output_commit] = job
    return out


def job_summary(job: JobInfo) -> dict[str, Any]:
    """What ``commit provenance --json`` tells of the job that made a commit."""
    return {"id": job.id, "stage": job.stage, "version": job.version, "trace": job.trace}


def register(app: typer.Typer) -> None:
    """Add the stage commands (``stage``, ``job``, ``datum``, ``daemon``) to ``app``."""
    for sub in (stage_app, job_app, datum_app):
        app.add_typer(sub)
    app.command(
        "daemon",
        help=(
            "Run stages when their inputs change: every --poll seconds, resume jobs whose "
            "process died, tick due cron inputs, and run each stage whose input heads or spec "
            "version differ from its last job's, upstream stages first (a failed job makes the "
            "jobs downstream of it UNRUNNABLE). Logs one timestamped line per event on stdout. "
            "Ctrl-C or SIGTERM stops it (exit status 0) after the running job; a second one "
            "interrupts that job."
        ),
    )(daemon_command)
