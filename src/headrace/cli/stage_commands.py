"""The ``stage`` commands of ``headrace``: create, update, list, inspect, stop, start, run and
delete stages (specs read from YAML or JSON files, see :mod:`headrace.stages.spec`).

Options, output and exit statuses follow :mod:`headrace.cli.stage_common`. :func:`register`
adds the commands to the ``headrace`` application; the stage layer is imported only when one
of them runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from headrace.cli.common import (
    DbOpt,
    HomeOpt,
    JsonOpt,
    ObjectsOpt,
    emit_json,
    error_console,
    fail,
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
    load_spec_file,
    opened_catalog,
    parse_input_options,
    print_jobs_table,
    report_job,
    run_now,
    short_id,
)

if TYPE_CHECKING:
    from headrace.stages.catalog import Catalog, JobInfo, StageInfo
    from headrace.stages.spec import StageSpec
    from headrace.store.store import Store

__all__ = ["register", "stage_app"]

stage_app = sub_app("stage", "Create, update, list, inspect, run, stop, start and delete stages.")

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


def _inputs_text(spec: StageSpec) -> str:
    from headrace.stages.planning import input_repos

    return ", ".join(
        repo if branch == "master" else f"{repo}@{branch}" for _, repo, branch in input_repos(spec)
    )


def _stage_json(stage: StageInfo, last: JobInfo | None) -> dict[str, Any]:
    from headrace.stages.views import stage_view

    return stage_view(stage, last)


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


def _check_spec(store: Store, catalog: Catalog, spec: StageSpec, source: Path) -> None:
    """Refuse a spec whose pfs input repos are missing, that would close a cycle of stages
    (cron input repos are made by the daemon: not checked), that this machine cannot run, or
    whose python / pipeline entry point does not import or take ``(inputs, output)`` (see
    :mod:`headrace.cli.entry_check`)."""
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
            fail(
                f"{source}: {path}.repo: repo {node.repo!r} does not exist; create it "
                f"(headrace repo create {node.repo}) or correct the spec"
            )
    from headrace.stages.sandbox import check_transform

    try:
        check_transform(spec.transform)  # an image without an engine, /pfs without namespaces
    except ValueError as e:
        fail(f"{source}: {e}")
    others = [s for s in catalog.list_stages() if s.name != spec.name]
    new = StageInfo(spec.name, spec, spec.version, None, 0.0, 0.0, False)
    try:
        stage_order([*others, new])
    except ValueError as e:
        fail(f"{source}: stage {spec.name!r} would make the stages read each other: {e}")
    _check_entry_point(spec, source)


def _check_entry_point(spec: StageSpec, source: Path) -> None:
    from headrace.cli.entry_check import EntryPointUnchecked, entry_point_problem

    try:
        problem = entry_point_problem(spec.transform, source)
    except EntryPointUnchecked as e:
        error_console().print(
            Text("Warning: ", style="yellow") + Text(f"{source}: {e}; not checked"),
            soft_wrap=True,
        )
        return
    if problem is not None:
        fail(f"{source}: {problem}")


# -- stage ---------------------------------------------------------------------------------------


@stage_app.command(
    "create",
    help=(
        "Create a stage from a spec file. The spec is validated, every pfs input repo must "
        "exist (cron input repos are made by the daemon), and the output repo, named after "
        "the stage, is created if missing. The spec file's folder is put on sys.path for the "
        "transform. A python or pipeline transform's module:function is checked in a separate "
        "Python process (the environment's interpreter when the spec names one): it must "
        "import and take (inputs, output)."
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

    with opened_catalog(home, db, objects) as catalog:
        store = catalog.store
        spec = load_spec_file(spec_file)
        try:
            catalog.get_stage(spec.name)
        except LookupError:
            pass
        else:
            fail(
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
        emit_json(_stage_json(info, None))
        return
    repo = f"repo {spec.name}" + ("" if made_repo else " (it existed already)")
    say(f"Created stage {spec.name} (version {info.version[:8]}), writing to {repo}")
    say(
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
    reprocess: Annotated[
        bool,
        typer.Option(
            "--reprocess",
            help=(
                "Then run a job now over the inputs' heads that runs every datum again "
                "(pachctl update pipeline --reprocess)."
            ),
        ),
    ] = False,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    from headrace.stages.jobctl import run_stage_now

    with opened_catalog(home, db, objects) as catalog:
        spec = load_spec_file(spec_file)
        old = catalog.get_stage(spec.name)
        _check_spec(catalog.store, catalog, spec, spec_file)
        info = catalog.put_stage(spec, str(spec_file.resolve()), update=True)
        if reprocess:
            job = run_now(
                catalog,
                lambda progress: run_stage_now(catalog, info, reprocess=True, progress=progress),
                False,
            )
        last = catalog.last_job(info.name)
    if reprocess:
        report_job(job, as_json)
        return
    if as_json:
        emit_json(_stage_json(info, last))
        return
    if old.version != info.version:
        say(
            f"Updated stage {info.name}: version {old.version[:8]} -> {info.version[:8]}; "
            "its next job runs every datum again"
        )
    else:
        say(
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
    with opened_catalog(home, db, objects) as catalog:
        rows = [(s, catalog.last_job(s.name)) for s in catalog.list_stages()]
    if as_json:
        emit_json([_stage_json(s, last) for s, last in rows])
        return
    if not rows:
        say("No stages; create one with: headrace stage create -f SPEC.yaml")
        return
    table = new_table("Stage", "State", "Version", "Last job", "Job state", "Inputs")
    for s, last in rows:
        table.add_row(
            s.name,
            "stopped" if s.stopped else "running",
            s.version[:8],
            short_id(last.id if last else None),
            last.state if last else "-",
            _inputs_text(s.spec),
        )
    output_console().print(table)


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

    with opened_catalog(home, db, objects) as catalog:
        stage = catalog.get_stage(name)
        recent = catalog.list_jobs(stage.name, limit=jobs) if jobs else []
    if as_json:
        out = _stage_json(stage, recent[0] if recent else None)
        out["spec"] = _spec_dict(stage.spec)
        from headrace.stages.views import job_view

        out["jobs"] = [job_view(j) for j in recent]
        emit_json(out)
        return
    print_fields([
        ("Stage", stage.name),
        ("State", "stopped" if stage.stopped else "running"),
        ("Version", stage.version),
        ("Output repo", f"{stage.output_repo}@{stage.spec.output_branch}"),
        ("Inputs", _inputs_text(stage.spec)),
        ("Spec file", stage.spec_file or "-"),
        ("Created", local_time(stage.created_at)),
        ("Updated", local_time(stage.updated_at)),
    ])  # fmt: skip
    say("")
    say("Spec:")
    text = yaml.safe_dump(_spec_dict(stage.spec), sort_keys=False, allow_unicode=True)
    say("".join(f"  {line}\n" for line in text.splitlines()).rstrip("\n"))
    if jobs:
        say("")
        say(f"Last jobs (newest first, at most {jobs}):")
        print_jobs_table(recent, "  none yet")


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
    from headrace.stages.jobs import kill_job
    from headrace.stages.planning import cron_repo, input_repos
    from headrace.stages.spec import CronInput, iter_inputs
    from headrace.store.errors import RepoNotFound

    with opened_catalog(home, db, objects) as catalog:
        store = catalog.store
        stage = catalog.get_stage(name)
        live = catalog.list_jobs(stage.name, states=(CREATED, RUNNING))
        for job in live:
            if not orphaned(job):
                fail(
                    f"stage {stage.name} has a running job {job.id}; stop it first "
                    f"(headrace job stop {short_id(job.id)})"
                )
        repos = [] if keep_repo else [stage.output_repo]
        if not keep_repo:
            for other in catalog.list_stages():
                if other.name != stage.name and any(
                    repo == stage.output_repo for _, repo, _ in input_repos(other.spec)
                ):
                    fail(
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
        say(f"Deleted stage {stage.name}; its repo {stage.output_repo} is kept")
    elif deleted:
        say(
            f"Deleted stage {stage.name} and repo(s) {', '.join(deleted)}; 'headrace gc' frees "
            "the space their files used"
        )
    else:
        say(f"Deleted stage {stage.name} (its repo {stage.output_repo} did not exist)")


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
    with opened_catalog(home, db, objects) as catalog:
        catalog.set_stopped(name, True)
    say(f"Stopped stage {name}: the daemon no longer runs it")


@stage_app.command(
    "start", help="Start a stopped stage: the daemon runs it again when its inputs change."
)
def stage_start(
    name: StageArg,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with opened_catalog(home, db, objects) as catalog:
        catalog.set_stopped(name, False)
    say(f"Started stage {name}: the daemon runs it when its inputs change")


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
    from headrace.stages.jobctl import run_stage_now

    with opened_catalog(home, db, objects) as catalog:
        stage = catalog.get_stage(name)
        commits = parse_input_options(inputs, stage.spec)
        job = run_now(
            catalog,
            lambda progress: run_stage_now(catalog, stage, commits, progress=progress),
            not no_progress,
        )
    report_job(job, as_json)


def register(app: typer.Typer) -> None:
    """Add the ``stage`` group to ``app``."""
    app.add_typer(stage_app)
