"""The ``job`` and ``datum`` commands of ``headrace``: list, inspect, wait for and stop jobs
(the runs of stages) and show their logs; list a job's datums, preview the datums of a spec
without running anything, and restart a failed job.

Stopping, restarting and rerunning are :mod:`headrace.stages.jobctl`'s functions and the
``--json`` output is :mod:`headrace.stages.views`'; this module parses arguments and prints.
Options, output and exit statuses follow :mod:`headrace.cli.stage_common`. :func:`register`
adds the commands to the ``headrace`` application; the stage layer is imported only when one
of them runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from headrace.cli.common import (
    EXIT_USAGE,
    DbOpt,
    HomeOpt,
    JsonOpt,
    LimitOpt,
    ObjectsOpt,
    emit_json,
    error_console,
    fail,
    human_size,
    local_time,
    new_table,
    output_console,
    print_fields,
    say,
    sub_app,
)
from headrace.cli.stage_common import (
    InputOpt,
    NoProgressOpt,
    datum_counts,
    human_duration,
    load_spec_file,
    opened_catalog,
    parse_input_options,
    print_jobs_table,
    report_job,
    run_now,
    short_id,
)

if TYPE_CHECKING:
    from headrace.stages.catalog import Catalog, DatumRecord

__all__ = ["datum_app", "job_app", "register"]

FILES_SHOWN = 5  # files of a datum listed in a preview table

job_app = sub_app("job", "List, inspect, wait for and stop jobs (runs of stages); show logs.")
datum_app = sub_app(
    "datum", "List the datums of a job or of a spec (a preview), restart failed datums."
)

JobArg = Annotated[
    str,
    typer.Argument(
        metavar="JOB", help="The job id (or a unique prefix of it).", show_default=False
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout", min=0, metavar="SECONDS", help="Give up after this long.", show_default=False
    ),
]


def _last_line(text: str) -> str:
    """The last non-empty line of an error: the exception of a traceback."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _datum_inputs(record: DatumRecord) -> str:
    return ", ".join(f"{name}:{path}" for name, path in record.input_paths())


def _datum_json(record: DatumRecord, with_log: bool = False) -> dict[str, Any]:
    from headrace.stages.views import datum_view

    return datum_view(record, with_log)


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
            fail(
                f"--state {state!r}: use one of {', '.join(s.lower() for s in JOB_STATES)}",
                EXIT_USAGE,
            )
        states = (state.upper(),)
    with opened_catalog(home, db, objects) as catalog:
        if stage is not None:
            catalog.get_stage(stage)
        jobs = catalog.list_jobs(stage, states=states, limit=limit)
    if as_json:
        from headrace.stages.views import job_view

        emit_json([job_view(j) for j in jobs])
    else:
        print_jobs_table(jobs, "No jobs" + (f" of stage {stage}" if stage else ""))


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
    from headrace.stages.views import input_repo_map, job_view

    with opened_catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
    if as_json:
        emit_json(job_view(job))
        return
    repos = input_repo_map(job.spec)
    inputs = "\n".join(
        f"{name}: {repos.get(name, '?')}@{commit}" for name, commit in sorted(job.inputs.items())
    )
    print_fields([
        ("Job", job.id),
        ("Stage", job.stage),
        ("State", job.state),
        ("Version", job.version),
        ("Trace", job.trace),
        ("Inputs", inputs or "-"),
        ("Output commit", f"{job.stage}@{job.output_commit}" if job.output_commit else "-"),
        ("Datums", datum_counts(job)),
        ("Created", local_time(job.created_at)),
        ("Started", local_time(job.started_at)),
        ("Finished", local_time(job.finished_at)),
        ("Duration", human_duration(job.seconds)),
        ("Owner", job.owner or "-"),
        ("Heartbeat", local_time(job.heartbeat)),
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
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Print each datum's log as it ends, until the job ends."
        ),
    ] = False,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    from headrace.stages.catalog import DATUM_FAILED, DATUM_SKIPPED

    if follow and as_json:
        fail("--follow prints logs as they come; it does not combine with --json", 2)
    with opened_catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
        if follow:
            _follow_logs(catalog, job.id, datum, failed)
            return
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
        emit_json([_datum_json(r, with_log=True) for r in records])
        return
    if not records:
        what = "failed datum" if failed else "datum that ran"
        say(f"Job {job.id} of stage {job.stage} has no {what} ({datum_counts(job)})")
        if job.reason:
            say(f"Reason: {job.reason}")
        return
    for i, r in enumerate(records):
        _print_datum_log(r, first=not i)


def _print_datum_log(r: DatumRecord, first: bool) -> None:
    out = output_console()
    if not first:
        out.print()
    out.print(
        Text(
            f"== datum {r.datum_id} ({_datum_inputs(r)}): {r.state}, {r.attempts} "
            f"attempt(s), {human_duration(r.seconds)}",
            style="bold",
        ),
        soft_wrap=True,
    )
    log = r.log.rstrip("\n")
    out.print(Text(log if log else "(no output)", style="" if log else "dim"), soft_wrap=True)
    if r.error:
        out.print(Text("error:", style="bold red"))
        out.print(Text(r.error.rstrip("\n")), soft_wrap=True)


def _follow_logs(catalog: Catalog, job_id: str, datum: str | None, failed: bool) -> None:
    """Print the log of each datum of the job as it ends (pachctl logs --follow), until the
    job ends; then say how it ended."""
    import time

    from headrace.stages.catalog import DATUM_FAILED, DATUM_SKIPPED

    seen: set[str] = set()
    while True:
        job = catalog.get_job(job_id)  # read before the datums: none that ended is missed
        for r in catalog.datums(job_id, with_logs=True):
            if r.datum_id in seen or r.state == DATUM_SKIPPED:
                continue
            if datum is not None and not r.datum_id.startswith(datum):
                continue
            if failed and r.state != DATUM_FAILED:
                continue
            _print_datum_log(r, first=not seen)
            seen.add(r.datum_id)
        if job.done:
            say(f"Job {job.id} of stage {job.stage} ended {job.state} ({datum_counts(job)})")
            return
        time.sleep(0.5)


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
    with opened_catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
        while not job.done:
            if deadline is not None and time.monotonic() >= deadline:
                hint = ""
                if orphaned(job):
                    hint = (
                        "; no process runs it any more: 'headrace daemon' resumes it, "
                        f"'headrace job stop {short_id(job.id)}' ends it"
                    )
                fail(
                    f"job {job.id} of stage {job.stage} is still {job.state} after "
                    f"{timeout:g} s{hint}"
                )
            time.sleep(0.2)
            job = catalog.get_job(job.id)
    report_job(job, as_json)


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
    from headrace.stages.jobctl import stop_job

    with opened_catalog(home, db, objects) as catalog:
        result = stop_job(catalog, job_id)
    job = result.job
    if result.how == "asked":
        say(
            f"Asked job {job.id} of stage {job.stage} to stop; it ends KILLED within about "
            f"a second (headrace job wait {short_id(job.id)})"
        )
    elif result.how == "killed":
        say(f"Job {job.id} of stage {job.stage} had no process running it: marked KILLED")
    else:
        say(
            f"Job {job.id} of stage {job.stage} has no process running it but its output "
            "commit is finished; 'headrace daemon' records it as ended"
        )


# -- datum ---------------------------------------------------------------------------------------

TABLE_LIMIT = 200  # datums a table shows unless --limit says otherwise


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
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            "-n",
            min=0,
            metavar="N",
            help="Show at most N datums of a job (0: all). Default: 200 in a table, all in JSON.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    if (job_id is None) == (spec_file is None):
        fail("give either a JOB or --spec FILE", EXIT_USAGE)
    if spec_file is not None:
        _preview(spec_file, inputs, state, as_json, (home, db, objects))
        return
    assert job_id is not None
    if inputs:
        fail("--input goes with --spec (a job's input commits are fixed)", EXIT_USAGE)
    states = None
    if state is not None:
        known = ("success", "skipped", "failed", "recovered")
        if state.lower() not in known:
            fail(f"--state {state!r}: use one of {', '.join(known)}", EXIT_USAGE)
        states = (state.lower(),)
    with opened_catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
        records = catalog.datums(job.id, states=states)
    if limit is None:
        limit = 0 if as_json else TABLE_LIMIT
    hidden = len(records) - limit if limit and len(records) > limit else 0
    if hidden:  # failed datums first: they are what one looks for
        records = sorted(records, key=lambda r: r.state != "failed")[:limit]
    if as_json:
        emit_json([_datum_json(r) for r in records])
        return
    if not records:
        say(f"Job {job.id} of stage {job.stage} has no datums" + (f" {state}" if state else ""))
        return
    table = new_table(
        "Datum", "State", "Inputs", "Attempts", "Seconds", "Error", right=("Attempts", "Seconds")
    )
    for r in records:
        table.add_row(
            short_id(r.datum_id),
            r.state,
            _datum_inputs(r),
            str(r.attempts),
            f"{r.seconds:.2f}",
            _last_line(r.error) or "-",
        )
    output_console().print(table)
    if hidden:
        say(f"... and {hidden} more datum(s), not shown (--limit 0 shows all, --state filters)")


def _preview(
    spec_file: Path,
    inputs: list[str] | None,
    state: str | None,
    as_json: bool,
    location: tuple[Path | None, str | None, str | None],
) -> None:
    """``datum list --spec``: the spec's datums and how each compares with the last job."""
    from headrace.stages.views import PREVIEW_STATUSES, preview_datums, preview_view

    if state is not None and state.lower() not in PREVIEW_STATUSES:
        fail(f"--state {state!r}: with --spec use one of {', '.join(PREVIEW_STATUSES)}", EXIT_USAGE)
    status = None if state is None else state.lower()
    with opened_catalog(*location) as catalog:
        spec = load_spec_file(spec_file)
        preview = preview_datums(catalog, spec, parse_input_options(inputs, spec))
    if as_json:
        emit_json(preview_view(preview, status))
        return
    stage, exists, last = preview.stage, preview.stage is not None, preview.compared_with
    rows = [(d, st) for d, st in preview.rows if status is None or st == status]
    counts, removed = preview.counts, preview.removed
    if not exists:
        say(f"No stage {spec.name} yet: every datum is new")
    elif last is not None:
        say(f"Compared with job {short_id(last)}, the last successful job of stage {spec.name}")
        if stage is not None and stage.version != spec.version:
            say(
                f"(the spec's version {spec.version[:8]} differs from the stage's "
                f"{stage.version[:8]}: every datum's hash changes)"
            )
    else:
        say(f"Stage {spec.name} has no successful job yet: every datum is new")
    if rows:
        table = new_table("Datum", "Status", "Inputs", "Files")
        for d, st in rows:
            files = [f.path for p in d.inputs for f in p.files]
            shown = "\n".join(files[:FILES_SHOWN])
            if len(files) > FILES_SHOWN:
                shown += f"\n(+{len(files) - FILES_SHOWN} more)"
            table.add_row(
                short_id(d.id), st, ", ".join(f"{p.name}:{p.path}" for p in d.inputs), shown or "-"
            )
        output_console().print(table)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    tail = f"; {len(removed)} removed since that job" if removed else ""
    say(f"{len(preview.rows)} datum(s): {summary}{tail}")
    if spec.reprocess == "every_job":
        say("(reprocess: every_job: a job runs every datum, whatever its status)")


@datum_app.command(
    "inspect",
    help=(
        "Show one datum of a job (pachctl inspect datum): state, hash, inputs, outputs, "
        "attempts, time and error."
    ),
)
def datum_inspect(
    job_id: JobArg,
    datum: Annotated[
        str,
        typer.Argument(metavar="DATUM", help="The datum id (or a prefix).", show_default=False),
    ],
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with opened_catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
        record = catalog.get_datum(job.id, datum)
    if as_json:
        emit_json({"job_id": job.id, **_datum_json(record)})
        return
    outputs = ", ".join(f"{p} ({human_size(n)})" for p, _, n in record.output_files())
    print_fields([
        ("Datum", record.datum_id),
        ("Job", f"{job.id} (stage {job.stage})"),
        ("State", record.state),
        ("Hash", record.hash),
        ("Inputs", _datum_inputs(record) or "-"),
        ("Outputs", outputs or "-"),
        ("Attempts", str(record.attempts)),
        ("Time", human_duration(record.seconds)),
        ("Error", record.error.rstrip("\n") or "-"),
    ])  # fmt: skip


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
    from headrace.stages.jobctl import restart_job

    def note(message: str) -> None:
        error_console().print(Text(f"Note: {message}", style="yellow"), soft_wrap=True)

    with opened_catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
        new = run_now(
            catalog, lambda progress: restart_job(catalog, job.id, progress, note), not no_progress
        )
    if not as_json:
        say(f"Restarted job {job.id} as job {new.id}")
    report_job(new, as_json)


@job_app.command(
    "rerun",
    help=(
        "Run a job of the same stage again over the same input commits (pachctl rerun job): "
        "datums that succeeded with the same content are reused unless --reprocess. Prints "
        "how the new job ended; the exit status is 1 unless it ended SUCCESS."
    ),
)
def job_rerun(
    job_id: JobArg,
    reprocess: Annotated[
        bool, typer.Option("--reprocess", help="Run every datum again, reusing none.")
    ] = False,
    no_progress: NoProgressOpt = False,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    from headrace.stages.jobctl import rerun_job

    with opened_catalog(home, db, objects) as catalog:
        job = catalog.get_job(job_id)
        new = run_now(
            catalog,
            lambda progress: rerun_job(catalog, job.id, reprocess, progress),
            not no_progress,
        )
    if not as_json:
        say(f"Reran job {job.id} as job {new.id}")
    report_job(new, as_json)


def register(app: typer.Typer) -> None:
    """Add the ``job`` and ``datum`` groups to ``app``."""
    for sub in (job_app, datum_app):
        app.add_typer(sub)
