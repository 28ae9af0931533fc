"""The ``commit`` commands of ``headrace``: start, finish, list, inspect, wait for, squash and
delete commits, and list their provenance and subvenance.

``commit wait`` on the output branch of a stage waits for the jobs upstream of it, and
``commit provenance`` / ``subvenance`` name the jobs that made commits: both reach the stage
layer through :mod:`headrace.cli.stage_common`, imported only when they run.

Options, output and exit statuses follow :mod:`headrace.cli.common`. :func:`register` adds the
commands to the ``headrace`` application.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from headrace.cli.common import (
    EXIT_USAGE,
    BranchArg,
    DbOpt,
    HomeOpt,
    JsonOpt,
    LimitOpt,
    MessageOpt,
    ObjectsOpt,
    RefArg,
    commit_json,
    commit_name,
    emit_json,
    fail,
    handle_errors,
    human_size,
    local_time,
    new_table,
    opened_store,
    output_console,
    print_fields,
    say,
    sub_app,
    valid_repo_name,
)
from headrace.store.refs import parse_ref

if TYPE_CHECKING:
    from headrace.store.records import CommitInfo

__all__ = ["commit_app", "register"]

commit_app = sub_app("commit", "Start, finish, list, inspect, wait for, squash and delete commits.")


def _commits_table(commits: list[CommitInfo], empty: str, with_repo: bool = True) -> None:
    if not commits:
        say(empty)
        return
    columns = ["Commit", "Branch", "State", "Started", "Files", "Size", "Message"]
    table = new_table(*(["Repo", *columns] if with_repo else columns), right=("Files", "Size"))
    for c in commits:
        row = [
            c.id, c.branch or "-", c.state.lower(), local_time(c.started_at),
            "-" if c.file_count is None else str(c.file_count), human_size(c.size_bytes),
            c.message,
        ]  # fmt: skip
        table.add_row(*([c.repo, *row] if with_repo else row))
    output_console().print(table)


def _commit_fields(c: CommitInfo, extra: list[tuple[str, str]] | None = None) -> None:
    print_fields([
        ("Commit", c.id),
        ("Repo", c.repo),
        ("Branch", c.branch or "-"),
        ("Parent", c.parent or "-"),
        ("State", c.state.lower()),
        ("Origin", c.origin),
        ("Started", local_time(c.started_at)),
        ("Finished", local_time(c.finished_at)),
        ("Files", "-" if c.file_count is None else str(c.file_count)),
        ("Size", human_size(c.size_bytes)),
        ("Message", c.message),
        *(extra or []),
    ])  # fmt: skip


# -- commit --------------------------------------------------------------------------------------


@commit_app.command(
    "start",
    help=(
        "Open a commit on a branch (created if missing) and print its id. Files put to the "
        "branch then go into this commit until 'headrace commit finish'."
    ),
)
def commit_start(
    branch: BranchArg,
    message: MessageOpt = "",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with opened_store(home, db, objects) as store:
        info = store.start_commit(branch, message)
    if as_json:
        emit_json(commit_json(info))
    else:
        typer.echo(info.id)


@commit_app.command("finish", help="Finish an open commit: it becomes immutable.")
def commit_finish(
    ref: RefArg,
    message: Annotated[
        str | None,
        typer.Option("-m", "--message", help="Replace the commit message.", show_default=False),
    ] = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with opened_store(home, db, objects) as store:
        info = store.finish_commit(ref, message)
    if as_json:
        emit_json(commit_json(info))
    else:
        say(
            f"Finished commit {info.id} of {commit_name(info)}: {info.file_count} file(s), "
            f"{human_size(info.size_bytes)}"
        )


@commit_app.command(
    "list",
    help=(
        "List the commits of a repo, newest first; or with --trace ID, every commit and job of "
        "one trace (Pachyderm's global ID: a user's commit and all it caused downstream)."
    ),
)
def commit_list(
    repo: Annotated[
        str | None,
        typer.Argument(
            metavar="REPO", help="The repo (repo@branch is short for --branch).", show_default=False
        ),
    ] = None,
    trace: Annotated[
        str | None,
        typer.Option(
            "--trace",
            metavar="ID",
            help="List the commits and jobs of this trace instead (a user commit's id).",
            show_default=False,
        ),
    ] = None,
    branch: Annotated[
        str | None,
        typer.Option(
            "--branch",
            "-b",
            metavar="BRANCH",
            help="Only commits made on this branch.",
            show_default=False,
        ),
    ] = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    if trace is not None:
        _trace_list(trace, as_json, home, db, objects)
        return
    if repo is None:
        fail("name a repo (headrace commit list REPO) or give --trace ID", 2)
    if "@" in repo:
        with handle_errors():
            parsed = parse_ref(repo)
        repo, branch = parsed.repo, branch or parsed.ref
    repo = valid_repo_name(repo)
    with opened_store(home, db, objects) as store:
        commits = store.list_commits(repo, branch=branch, limit=limit)
    if as_json:
        emit_json([commit_json(c) for c in commits])
    else:
        empty = f"No commits in {repo}" + (f"@{branch}" if branch else "")
        _commits_table(commits, empty, with_repo=False)


def _trace_list(
    trace: str, as_json: bool, home: Path | None, db: str | None, objects: str | None
) -> None:
    """The commits and jobs of one trace, oldest first."""
    from headrace.cli.stage_common import opened_catalog, print_jobs_table
    from headrace.stages.views import trace_of, trace_view

    with opened_catalog(home, db, objects) as catalog:
        found = trace_of(catalog, trace)
    if not found.commits and not found.jobs:
        fail(f"no commit or job has trace {trace}")
    if as_json:
        emit_json(trace_view(found))
        return
    jobs = found.jobs
    _commits_table(found.commits, f"No commits of trace {trace}", with_repo=True)
    print_jobs_table(jobs, f"No jobs of trace {trace}")


@commit_app.command(
    "inspect",
    help="Show a commit: state, parent, times, size, message and the commits it was made from.",
)
def commit_inspect(
    ref: RefArg,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with opened_store(home, db, objects) as store:
        info = store.inspect_commit(ref)
        direct = store.provenance(f"{info.repo}@{info.id}", transitive=False)
    provenance = [f"{c.repo}@{c.id}" for c in direct]
    if as_json:
        emit_json({**commit_json(info), "provenance": provenance})
    else:
        _commit_fields(info, [("Provenance", ", ".join(provenance) or "-")])


@commit_app.command(
    "wait",
    help=(
        "Wait until a commit is finished (exit 1 on --timeout). For the output branch of a "
        "stage (repo@branch), wait until the newest commit of the inputs upstream of it (or "
        "the commit --trace names) has been processed into it, and print that commit; exit 1 "
        "if a job on the way fails."
    ),
)
def commit_wait(
    ref: RefArg,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0,
            metavar="SECONDS",
            help="Give up after this long.",
            show_default=False,
        ),
    ] = None,
    trace: Annotated[
        str | None,
        typer.Option(
            "--trace",
            metavar="ID",
            help=(
                "For a stage's output branch: wait for this trace (the id of the upstream "
                "commit the jobs came from) instead of the newest one."
            ),
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    carried = ""
    with opened_store(home, db, objects) as store:
        from headrace.cli.stage_common import stage_output_branch

        target = stage_output_branch(store, ref)
        if target is None:
            if trace is not None:
                fail(f"--trace: {ref} is not the output branch of a stage", EXIT_USAGE)
            info = store.wait_commit(ref, timeout=timeout, poll=0.2)
        else:
            from headrace.stages.daemon import wait_for_arrival

            catalog, branch = target
            try:
                commit_id = wait_for_arrival(catalog, branch, timeout=timeout, trace=trace)
            except (RuntimeError, LookupError) as e:  # a job on the way failed; no input yet
                message = str(e)
            else:
                message = ""
            if message:
                fail(message)
            info = store.inspect_commit(f"{branch.partition('@')[0]}@{commit_id}")
            carried = catalog.traces([info.id]).get(info.id, "")
    if as_json:
        emit_json(commit_json(info))
    else:
        tail = f" (trace {carried})" if carried else ""
        say(f"Commit {info.id} of {commit_name(info)} is finished{tail}")


@commit_app.command(
    "squash",
    help="Fold a finished commit into its children: its changes stay, the commit goes.",
)
def commit_squash(
    ref: RefArg,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with opened_store(home, db, objects) as store:
        info = store.inspect_commit(ref)
        store.squash_commit(f"{info.repo}@{info.id}")
    say(f"Squashed commit {info.id} of {info.repo} into its children")


@commit_app.command(
    "delete",
    help="Delete a commit, open or finished; its children move onto its parent.",
)
def commit_delete(
    ref: RefArg,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with opened_store(home, db, objects) as store:
        info = store.inspect_commit(ref)
        store.delete_commit(f"{info.repo}@{info.id}")
    say(f"Deleted commit {info.id} of {info.repo}")


DirectOpt = Annotated[
    bool, typer.Option("--direct", help="Only direct links, not the transitive closure.")
]


@commit_app.command("provenance", help="List the commits a commit was made from.")
def commit_provenance(
    ref: RefArg,
    direct: DirectOpt = False,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    _linked_commits(
        ref,
        "provenance",
        direct,
        as_json,
        (home, db, objects),
        "Commit {id} of {repo} has no recorded provenance",
    )


@commit_app.command("subvenance", help="List the commits made from a commit.")
def commit_subvenance(
    ref: RefArg,
    direct: DirectOpt = False,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    _linked_commits(
        ref,
        "subvenance",
        direct,
        as_json,
        (home, db, objects),
        "No commit was made from commit {id} of {repo}",
    )


def _linked_commits(
    ref: str,
    direction: str,
    direct: bool,
    as_json: bool,
    location: tuple[Path | None, str | None, str | None],
    empty: str,
) -> None:
    """Print the commits ``ref``'s commit was made from (provenance) or that were made from it."""
    with opened_store(*location) as store:
        info = store.inspect_commit(ref)
        walk = store.provenance if direction == "provenance" else store.subvenance
        commits = walk(f"{info.repo}@{info.id}", transitive=not direct)
        from headrace.cli.stage_common import jobs_of_commits
        from headrace.stages.views import commits_with_jobs

        jobs = jobs_of_commits(store, [info.id, *(c.id for c in commits)])
    if as_json:
        emit_json(commits_with_jobs(commits, jobs))
        return
    own = jobs.get(info.id)
    if own is not None:
        say(
            f"Commit {info.id} of {commit_name(info)} was made by job {own.id} of stage "
            f"{own.stage} (spec version {own.version}, trace {own.trace})"
        )
    _commits_table(commits, empty.format(id=info.id, repo=info.repo))
    made = [c for c in commits if c.id in jobs]
    if made:
        say("")
        table = new_table("Commit", "Repo", "Job", "Stage", "Version", "Trace")
        for c in made:
            job = jobs[c.id]
            table.add_row(c.id, c.repo, job.id, job.stage, job.version, job.trace)
        output_console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``commit`` group to ``app``."""
    app.add_typer(commit_app)
