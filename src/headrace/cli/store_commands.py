"""The store commands of ``headrace``: ``repo``, ``branch``, ``commit``, ``file``, ``merge``,
``fsck`` and ``gc`` (noun, then verb: ``headrace file put sales@master:/2024/ ./jan``).

Every store command takes ``--home`` (``$HEADRACE_HOME``, default ``~/.headrace``), ``--db``
(``$HEADRACE_DB``, a SQLAlchemy URL; default SQLite in the home folder) and ``--objects``
(``$HEADRACE_OBJECTS``, an fsspec URL; default the ``objects`` folder of the home).

Output: tables for people (sizes in KiB/MiB/..., times in local ISO form), or with ``--json`` on
every command that prints something, JSON for programs: stable snake_case keys, sizes in bytes,
times as ISO 8601 in UTC, ``null`` for what is unknown.

Exit status: 0 on success; 1 when the store refuses or fails (something not found, a merge
conflict, an open commit in the way, a corrupt object, problems found by ``fsck``, a timeout, an
unreachable database); 2 for a usage error: an unknown option, an invalid repo or branch name,
reference or path, a local SOURCE that does not exist. Errors print one line ``Error: <message>``
on stderr (a merge conflict follows it with the conflicting paths).

:func:`register` adds the commands to the ``headrace`` application. The store itself is imported
only when a store command runs, so ``headrace run`` does not pay for it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from headrace.store.errors import (
    CommitNotFound,
    InvalidName,
    InvalidPath,
    InvalidReference,
    MergeConflict,
    StoreError,
)
from headrace.store.refs import normalize_path, parse_ref, validate_name

if TYPE_CHECKING:
    from headrace.store.records import CommitInfo, DiffEntry, FileInfo, RepoInfo
    from headrace.store.store import Store

__all__ = ["branch_app", "commit_app", "file_app", "register", "repo_app"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# A put shows a progress bar (on a terminal) from this many files or bytes on.
PROGRESS_MIN_FILES = 20
PROGRESS_MIN_BYTES = 32 * 1024 * 1024

_USAGE_ERRORS = (InvalidName, InvalidReference, InvalidPath)
_PLAIN_WIDTH = 1000  # tables written to a pipe or file are never wrapped

# -- options shared by every store command -------------------------------------------------------

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="HEADRACE_HOME",
        metavar="PATH",
        help="Folder of the store: its SQLite metadata and objects.  [default: ~/.headrace]",
        show_default=False,
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="HEADRACE_DB",
        metavar="URL",
        help=(
            "SQLAlchemy URL of the metadata database, e.g. "
            "postgresql+psycopg://user@host/db.  [default: SQLite in --home]"
        ),
        show_default=False,
    ),
]
ObjectsOpt = Annotated[
    str | None,
    typer.Option(
        "--objects",
        envvar="HEADRACE_OBJECTS",
        metavar="URL",
        help="fsspec URL where objects are kept, e.g. s3://bucket/store.  [default: HOME/objects]",
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print JSON (sizes in bytes, times ISO 8601 UTC) instead of a table or text.",
    ),
]
MessageOpt = Annotated[
    str, typer.Option("-m", "--message", help="The commit message.", show_default=False)
]
RefArg = Annotated[
    str,
    typer.Argument(
        metavar="REF",
        help="A commit: repo@branch, repo@<commit id>, with ^N or ~N to go back N commits.",
        show_default=False,
    ),
]
PathRefArg = Annotated[
    str, typer.Argument(metavar="REF:/path", help="The file or folder.", show_default=False)
]
LimitOpt = Annotated[
    int | None,
    typer.Option(
        "--limit", "-n", min=1, metavar="N", help="At most N entries.", show_default=False
    ),
]
RepoArg = Annotated[str, typer.Argument(metavar="REPO", help="The repo name.", show_default=False)]


def _sub_app(name: str, help: str) -> typer.Typer:
    return typer.Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


repo_app = _sub_app("repo", "Create, list, inspect and delete repos of the versioned store.")
branch_app = _sub_app("branch", "Create, list and delete branches of a repo.")
commit_app = _sub_app(
    "commit", "Start, finish, list, inspect, wait for, squash and delete commits."
)
file_app = _sub_app(
    "file", "Put, get, list, glob, inspect, delete, copy and diff files of a commit."
)

# -- consoles, errors and opening the store ------------------------------------------------------


def _error_console() -> Console:
    return Console(stderr=True, highlight=False, markup=False, emoji=False)


def _out() -> Console:
    console = Console(highlight=False, markup=False, emoji=False)
    if not console.is_terminal:
        console = Console(highlight=False, markup=False, emoji=False, width=_PLAIN_WIDTH)
    return console


def _fail(message: str, code: int = EXIT_FAILURE, details: tuple[str, ...] = ()) -> NoReturn:
    console = _error_console()
    console.print(Text("Error: ", style="bold red") + Text(message), soft_wrap=True)
    for line in details:
        console.print(Text(f"  {line}"), soft_wrap=True)
    raise typer.Exit(code)


def _is_database_error(e: BaseException) -> bool:
    return type(e).__module__.split(".")[0] == "sqlalchemy"


def _database_message(e: BaseException) -> str:
    cause = getattr(e, "orig", None) or e
    text = str(cause).strip().splitlines()
    return f"metadata database: {type(cause).__name__}: {text[0] if text else ''}".rstrip(": ")


@contextmanager
def _handle_errors() -> Iterator[None]:
    """Turn what the store raises into ``Error: <message>`` and the exit status."""
    try:
        yield
    except _USAGE_ERRORS as e:
        _fail(str(e), EXIT_USAGE)
    except StoreError as e:
        _fail(str(e))
    except TimeoutError as e:
        _fail(str(e))
    except OSError as e:
        if e.strerror and e.filename:
            _fail(f"{e.strerror}: {e.filename}")
        _fail(str(e) or type(e).__name__)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as e:
        if _is_database_error(e):
            _fail(_database_message(e))
        raise


def _open(home: Path | None, db: str | None, objects: str | None) -> Store:
    from headrace.store.store import Store

    try:
        return Store.open(home, db, objects)
    except (ValueError, ImportError) as e:  # an unknown fsspec protocol or missing driver
        _fail(f"cannot open the store: {e} (check --db and --objects)", EXIT_USAGE)
    except StoreError as e:
        if "metadata URL" in str(e):  # a --db URL that does not parse or is not supported
            _fail(f"--db: {e}", EXIT_USAGE)
        raise


@contextmanager
def _store(home: Path | None, db: str | None, objects: str | None) -> Iterator[Store]:
    """The opened store, closed afterwards; store errors become exit statuses."""
    with _handle_errors():
        store = _open(home, db, objects)
        try:
            yield store
        finally:
            store.close()


# -- formatting ----------------------------------------------------------------------------------


def human_size(n: int | None) -> str:
    """A byte count for people.

    >>> human_size(512), human_size(1536), human_size(5 * 1024**3), human_size(None)
    ('512 B', '1.5 KiB', '5.0 GiB', '-')
    """
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            break
    return f"{value:.1f} {unit}"


def _local_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def _utc(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _repo_json(r: RepoInfo) -> dict[str, Any]:
    return {
        "name": r.name,
        "description": r.description,
        "created_at": _utc(r.created_at),
        "branches": list(r.branches),
    }


def _commit_json(c: CommitInfo) -> dict[str, Any]:
    return {
        "id": c.id,
        "repo": c.repo,
        "branch": c.branch,
        "parent": c.parent,
        "state": c.state,
        "origin": c.origin,
        "message": c.message,
        "started_at": _utc(c.started_at),
        "finished_at": _utc(c.finished_at),
        "file_count": c.file_count,
        "size_bytes": c.size_bytes,
    }


def _file_json(f: FileInfo | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"path": f.path, "type": f.type, "size_bytes": f.size, "hash": f.hash}


def _diff_json(d: DiffEntry) -> dict[str, Any]:
    return {"path": d.path, "kind": d.kind, "old": _file_json(d.old), "new": _file_json(d.new)}


def _emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _say(text: str) -> None:
    _out().print(Text(text), soft_wrap=True)


def _table(*columns: str, right: tuple[str, ...] = ()) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left", overflow="fold")
    return table


def _fields(rows: list[tuple[str, str]]) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in rows:
        grid.add_row(name, value)
    _out().print(grid)


def _commit_name(c: CommitInfo) -> str:
    return f"{c.repo}@{c.branch}" if c.branch else c.repo


def _commits_table(commits: list[CommitInfo], empty: str, with_repo: bool = True) -> None:
    if not commits:
        _say(empty)
        return
    columns = ["Commit", "Branch", "State", "Started", "Files", "Size", "Message"]
    table = _table(*(["Repo", *columns] if with_repo else columns), right=("Files", "Size"))
    for c in commits:
        row = [
            c.id, c.branch or "-", c.state.lower(), _local_time(c.started_at),
            "-" if c.file_count is None else str(c.file_count), human_size(c.size_bytes),
            c.message,
        ]  # fmt: skip
        table.add_row(*([c.repo, *row] if with_repo else row))
    _out().print(table)


def _files_table(files: list[FileInfo], empty: str) -> None:
    if not files:
        _say(empty)
        return
    table = _table("Path", "Type", "Size", right=("Size",))
    for f in files:
        table.add_row(f.path + ("/" if f.type == "dir" and f.path != "/" else ""), f.type,
                      human_size(f.size))  # fmt: skip
    _out().print(table)


def _commit_fields(c: CommitInfo) -> None:
    _fields([
        ("Commit", c.id),
        ("Repo", c.repo),
        ("Branch", c.branch or "-"),
        ("Parent", c.parent or "-"),
        ("State", c.state.lower()),
        ("Origin", c.origin),
        ("Started", _local_time(c.started_at)),
        ("Finished", _local_time(c.finished_at)),
        ("Files", "-" if c.file_count is None else str(c.file_count)),
        ("Size", human_size(c.size_bytes)),
        ("Message", c.message),
    ])  # fmt: skip


def _repo_name(text: str) -> str:
    with _handle_errors():
        return validate_name(text)


# -- repo ----------------------------------------------------------------------------------------


@repo_app.command(
    "create", help="Create an empty repo; the first commit to REPO@BRANCH creates that branch."
)
def repo_create(
    name: RepoArg,
    description: Annotated[
        str, typer.Option("-d", "--description", help="What the repo holds.", show_default=False)
    ] = "",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        info = store.create_repo(name, description)
    if as_json:
        _emit_json(_repo_json(info))
    else:
        _say(f"Created repo {info.name}")


@repo_app.command("list", help="List the repos.")
def repo_list(
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        repos = store.list_repos()
    if as_json:
        _emit_json([_repo_json(r) for r in repos])
        return
    if not repos:
        _say("No repos; create one with: headrace repo create NAME")
        return
    table = _table("Repo", "Branches", "Created", "Description")
    for r in repos:
        table.add_row(r.name, ", ".join(r.branches), _local_time(r.created_at), r.description)
    _out().print(table)


@repo_app.command("inspect", help="Show a repo: description, creation time, branches.")
def repo_inspect(
    name: RepoArg,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    name = _repo_name(name)
    with _store(home, db, objects) as store:
        info = store.inspect_repo(name)
    if as_json:
        _emit_json(_repo_json(info))
        return
    _fields([
        ("Repo", info.name),
        ("Description", info.description or "-"),
        ("Created", _local_time(info.created_at)),
        ("Branches", ", ".join(info.branches) or "-"),
    ])  # fmt: skip


@repo_app.command("delete", help="Delete a repo with its branches and commits.")
def repo_delete(
    name: RepoArg,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    name = _repo_name(name)
    with _store(home, db, objects) as store:
        store.delete_repo(name)
    _say(f"Deleted repo {name}; 'headrace gc' frees the space its files used")


# -- branch --------------------------------------------------------------------------------------

BranchArg = Annotated[
    str, typer.Argument(metavar="REPO@BRANCH", help="The branch.", show_default=False)
]


@branch_app.command("create", help="Create a branch, empty or at the commit --head names.")
def branch_create(
    branch: BranchArg,
    head: Annotated[
        str | None,
        typer.Option(
            "--head",
            metavar="REF",
            help="Start the branch at this commit: another branch, repo@branch or a commit id.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        info = store.create_branch(branch, head=head)
    if as_json:
        _emit_json({"repo": info.repo, "name": info.name, "head": info.head})
    else:
        at = f"at {info.head}" if info.head else "with no commits"
        _say(f"Created branch {info.repo}@{info.name} {at}")


@branch_app.command("list", help="List the branches of a repo and their head commits.")
def branch_list(
    repo: RepoArg,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    repo = _repo_name(repo)
    with _store(home, db, objects) as store:
        branches = store.list_branches(repo)
    if as_json:
        _emit_json([{"repo": b.repo, "name": b.name, "head": b.head} for b in branches])
        return
    if not branches:
        _say(f"Repo {repo} has no branches")
        return
    table = _table("Branch", "Head")
    for b in branches:
        table.add_row(b.name, b.head or "-")
    _out().print(table)


@branch_app.command("delete", help="Delete a branch (its commits stay reachable by id).")
def branch_delete(
    branch: BranchArg,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        store.delete_branch(branch)
    _say(f"Deleted branch {branch}")


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
    with _store(home, db, objects) as store:
        info = store.start_commit(branch, message)
    if as_json:
        _emit_json(_commit_json(info))
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
    with _store(home, db, objects) as store:
        info = store.finish_commit(ref, message)
    if as_json:
        _emit_json(_commit_json(info))
    else:
        _say(
            f"Finished commit {info.id} of {_commit_name(info)}: {info.file_count} file(s), "
            f"{human_size(info.size_bytes)}"
        )


@commit_app.command("list", help="List the commits of a repo, newest first.")
def commit_list(
    repo: Annotated[
        str,
        typer.Argument(
            metavar="REPO", help="The repo (repo@branch is short for --branch).", show_default=False
        ),
    ],
    branch: Annotated[
        str | None,
        typer.Option(
            "--branch", "-b", help="Only commits made on this branch.", show_default=False
        ),
    ] = None,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    if "@" in repo:
        with _handle_errors():
            parsed = parse_ref(repo)
        repo, branch = parsed.repo, branch or parsed.ref
    repo = _repo_name(repo)
    with _store(home, db, objects) as store:
        commits = store.list_commits(repo, branch=branch, limit=limit)
    if as_json:
        _emit_json([_commit_json(c) for c in commits])
    else:
        empty = f"No commits in {repo}" + (f"@{branch}" if branch else "")
        _commits_table(commits, empty, with_repo=False)


@commit_app.command("inspect", help="Show a commit: state, parent, times, size, message.")
def commit_inspect(
    ref: RefArg,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        info = store.inspect_commit(ref)
    if as_json:
        _emit_json(_commit_json(info))
    else:
        _commit_fields(info)


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
    with _store(home, db, objects) as store:
        from headrace.cli.stage_commands import stage_output_branch

        target = stage_output_branch(store, ref)
        if target is None:
            if trace is not None:
                _fail(f"--trace: {ref} is not the output branch of a stage", EXIT_USAGE)
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
                _fail(message)
            info = store.inspect_commit(f"{branch.partition('@')[0]}@{commit_id}")
            carried = catalog.traces([info.id]).get(info.id, "")
    if as_json:
        _emit_json(_commit_json(info))
    else:
        tail = f" (trace {carried})" if carried else ""
        _say(f"Commit {info.id} of {_commit_name(info)} is finished{tail}")


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
    with _store(home, db, objects) as store:
        info = store.inspect_commit(ref)
        store.squash_commit(f"{info.repo}@{info.id}")
    _say(f"Squashed commit {info.id} of {info.repo} into its children")


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
    with _store(home, db, objects) as store:
        info = store.inspect_commit(ref)
        store.delete_commit(f"{info.repo}@{info.id}")
    _say(f"Deleted commit {info.id} of {info.repo}")


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
    with _store(*location) as store:
        info = store.inspect_commit(ref)
        walk = store.provenance if direction == "provenance" else store.subvenance
        commits = walk(f"{info.repo}@{info.id}", transitive=not direct)
        from headrace.cli.stage_commands import job_summary, jobs_of_commits

        jobs = jobs_of_commits(store, [info.id, *(c.id for c in commits)])
    if as_json:
        _emit_json([
            {**_commit_json(c), "job": job_summary(jobs[c.id]) if c.id in jobs else None}
            for c in commits
        ])  # fmt: skip
        return
    own = jobs.get(info.id)
    if own is not None:
        _say(
            f"Commit {info.id} of {_commit_name(info)} was made by job {own.id} of stage "
            f"{own.stage} (spec version {own.version}, trace {own.trace})"
        )
    _commits_table(commits, empty.format(id=info.id, repo=info.repo))
    made = [c for c in commits if c.id in jobs]
    if made:
        _say("")
        table = _table("Commit", "Repo", "Job", "Stage", "Version", "Trace")
        for c in made:
            job = jobs[c.id]
            table.add_row(c.id, c.repo, job.id, job.stage, job.version, job.trace)
        _out().print(table)


# -- file put ------------------------------------------------------------------------------------


@dataclass
class _Source:
    """One file to put: where it goes in the commit, its size if known, how to open it."""

    path: str
    size: int | None
    open: Callable[[], AbstractContextManager[IO[bytes]]]


class _Counted:
    """A binary reader that reports each block it reads (for the byte count and progress)."""

    def __init__(self, raw: IO[bytes], advance: Callable[[int], None]) -> None:
        self._raw = raw
        self._advance = advance

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._advance(len(data))
        return data

    def readinto(self, buf: memoryview) -> int:
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            got = readinto(buf) or 0
        else:
            data = self._raw.read(len(buf))
            got = len(data)
            buf[:got] = data
        self._advance(got)
        return got


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: path.open("rb")


def _stdin_is_terminal() -> bool:
    return sys.stdin is None or sys.stdin.isatty()


def _join(directory: str, name: str) -> str:
    return normalize_path(directory.rstrip("/") + "/" + name.lstrip("/"), allow_root=False)


def _put_plan(target: str, source: str, recursive: bool) -> tuple[str, list[_Source]]:
    """The branch or open commit written to, and the files to put (usage errors exit 2)."""
    r = parse_ref(target)
    if r.ancestry:
        _fail(
            f"{target!r} names an older commit; put files to a branch (repo@branch) or to an "
            "open commit (repo@<commit id>)",
            EXIT_USAGE,
        )
    _, sep, raw_path = target.partition(":")
    base = r.path or "/"
    into_dir = not sep or base == "/" or raw_path.endswith("/")
    commit = f"{r.repo}@{r.ref}"

    def single(name: str) -> str:
        return _join(base, name) if into_dir else base

    if source == "-":
        if into_dir:
            _fail(f"{target!r} names no file; give the path to write stdin to: "
                  "REPO@BRANCH:/path/file", EXIT_USAGE)  # fmt: skip
        stdin = typer.get_binary_stream("stdin")
        return commit, [_Source(base, None, lambda: nullcontext(stdin))]
    if "://" in source:
        return commit, _url_sources(source, recursive, base, single)
    local = Path(source)
    if local.is_dir():
        files = [p for p in sorted(local.rglob("*")) if p.is_file()]
        return commit, [
            _Source(_join(base, p.relative_to(local).as_posix()), p.stat().st_size, _opener(p))
            for p in files
        ]
    if not local.is_file():
        _fail(
            f"SOURCE {source!r} is not a local file or folder (use - for stdin, or a URL "
            "such as s3://bucket/key)",
            EXIT_USAGE,
        )
    if recursive:
        _fail(f"-r: SOURCE {source!r} is a file, not a folder", EXIT_USAGE)
    return commit, [_Source(single(local.name), local.stat().st_size, _opener(local))]


def _url_sources(
    url: str, recursive: bool, base: str, single: Callable[[str], str]
) -> list[_Source]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    if recursive and fs.isfile(root):
        _fail(f"-r: SOURCE {url!r} is a file, not a folder", EXIT_USAGE)
    if recursive or fs.isdir(root):
        found = fs.find(root, detail=True)
        prefix = root.rstrip("/") + "/"
        return [
            _Source(_join(base, name[len(prefix):]), info.get("size"), partial(fs.open, name, "rb"))
            for name, info in sorted(found.items())
        ]  # fmt: skip
    if not fs.isfile(root):
        raise FileNotFoundError(2, "no such file or folder", url)
    name = root.rstrip("/").rsplit("/", 1)[-1]
    return [_Source(single(name), fs.size(root), partial(fs.open, root, "rb"))]


@contextmanager
def _put_progress(sources: list[_Source]) -> Iterator[tuple[Callable[[int], None], Any]]:
    """``(advance_bytes, file_done)`` callbacks: a progress bar on a terminal for big puts."""
    console = _error_console()
    total = sum(s.size or 0 for s in sources)
    unknown = any(s.size is None for s in sources)
    big = len(sources) >= PROGRESS_MIN_FILES or total >= PROGRESS_MIN_BYTES
    if not console.is_terminal or not big:
        yield (lambda n: None), None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        count = len(sources)
        task = progress.add_task(f"0/{count} files", total=None if unknown else total)
        done = [0]

        def file_done(n: int) -> None:
            done[0] += n
            progress.update(task, description=f"{done[0]}/{count} files")

        yield (lambda n: progress.advance(task, n)), file_done


def _streams(sources: list[_Source], advance: Callable[[int], None]) -> Iterator[tuple[str, Any]]:
    """``(path, reader)`` pairs; each file is closed once the store has read it."""
    for s in sources:
        with s.open() as f:
            yield s.path, _Counted(f, advance)


@file_app.command(
    "put",
    help=(
        "Write files to a branch (one new commit) or into an open commit.\n\n"
        "SOURCE is a local file, a local folder (every file under it, recursively), - for "
        "stdin, or an fsspec URL (s3://bucket/key, https://...; a URL naming a folder, or "
        "with -r, puts every file under it). Without SOURCE, stdin is read.\n\n"
        "REF:/path names the file to write; for a folder SOURCE, or when the path ends with "
        "'/' or is missing, the folder the files go into (a file keeps its name). A progress "
        "bar shows on a terminal when many or large files are written."
    ),
)
def file_put(
    target: Annotated[
        str,
        typer.Argument(
            metavar="REF:/path",
            help="repo@branch:/path or repo@<open commit id>:/path.",
            show_default=False,
        ),
    ],
    source: Annotated[
        str | None,
        typer.Argument(metavar="SOURCE", help="What to write (see above).", show_default=False),
    ] = None,
    recursive: Annotated[
        bool,
        typer.Option("-r", "--recursive", help="SOURCE is a folder: put every file under it."),
    ] = False,
    message: MessageOpt = "",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    if source is None:
        if _stdin_is_terminal():
            _fail("give SOURCE (a file, a folder, a URL, or - and pipe data in)", EXIT_USAGE)
        source = "-"
    with _handle_errors():
        commit, sources = _put_plan(target, source, recursive)
        if not sources:
            _fail(f"SOURCE {source!r} holds no files; nothing was written")
    written = [0]
    with _store(home, db, objects) as store, _put_progress(sources) as (advance, file_done):

        def counted(n: int) -> None:
            written[0] += n
            advance(n)

        # put_files reads file objects too (its annotation names only bytes and paths)
        files = cast(Any, _streams(sources, counted))
        info = store.put_files(commit, files, message, progress=file_done)
    if as_json:
        _emit_json({"commit": _commit_json(info), "file_count": len(sources),
                    "size_bytes": written[0]})  # fmt: skip
        return
    what = f"{len(sources)} file(s), {human_size(written[0])}"
    if info.finished:
        _say(f"Wrote {what} to {_commit_name(info)} in commit {info.id}")
    else:
        _say(f"Staged {what} in open commit {info.id} of {_commit_name(info)}")


# -- file get, list, glob, inspect ---------------------------------------------------------------


@file_app.command(
    "get",
    help=(
        "Read a file or a folder. A file goes to stdout unless -o is given; a folder needs "
        "-o DIR and is written below it."
    ),
)
def file_get(
    ref: PathRefArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            metavar="OUT",
            help="Local file or folder to write to (- for stdout). An existing folder receives "
            "a file under its own name.",
            show_default=False,
        ),
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        info = store.inspect_file(ref)
        if output is None or str(output) == "-":
            if info.type != "file":
                _fail(f"{ref} is a folder; write it to a local folder with -o DIR", EXIT_USAGE)
            out = typer.get_binary_stream("stdout")
            for block in store.open_file(ref):
                out.write(block)
            out.flush()
            return
        written = store.get_file_to(ref, output)
    first = written[0] if len(written) == 1 else str(output)
    _say(f"Wrote {len(written)} file(s), {human_size(info.size)} to {first}")


StartAfterOpt = Annotated[
    str | None,
    typer.Option(
        "--start-after",
        metavar="PATH",
        help="List only what sorts after PATH (to page through large folders).",
        show_default=False,
    ),
]


@file_app.command("list", help="List the files and folders of a folder (default: the root).")
def file_list(
    ref: Annotated[
        str,
        typer.Argument(metavar="REF[:/dir]", help="The commit and folder.", show_default=False),
    ],
    recursive: Annotated[
        bool, typer.Option("-r", "--recursive", help="Every file below, not folders.")
    ] = False,
    limit: LimitOpt = None,
    start_after: StartAfterOpt = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        after = normalize_path(start_after) if start_after else None
        files = store.list_files(ref, recursive=recursive, start_after=after, limit=limit)
    if as_json:
        _emit_json([_file_json(f) for f in files])
        return
    _files_table(files, f"No files in {ref}")
    if limit is not None and len(files) == limit:
        _error_console().print(
            Text(f"(first {limit}; continue with --start-after {files[-1].path})", style="dim"),
            soft_wrap=True,
        )


@file_app.command(
    "glob", help="List the files and folders matching a pattern, e.g. r@master:/**/*.csv."
)
def file_glob(
    pattern: Annotated[
        str,
        typer.Argument(
            metavar="REF:PATTERN",
            help=(
                "* matches within a name, ** across folders, ? one character, [a-z] one of a "
                "set; a final / matches folders only."
            ),
            show_default=False,
        ),
    ],
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    ref, sep, glob = pattern.partition(":")  # the pattern as written: '\\' and a final '/' count
    with _store(home, db, objects) as store:
        files = store.glob_files(ref, glob if sep else None)
    if as_json:
        _emit_json([_file_json(f) for f in files])
    else:
        _files_table(files, f"Nothing matches {pattern}")


@file_app.command("inspect", help="Show a file (size, content hash) or a folder (total size).")
def file_inspect(
    ref: PathRefArg,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        info = store.inspect_file(ref)
    if as_json:
        _emit_json(_file_json(info))
        return
    _fields([
        ("Path", info.path),
        ("Type", info.type),
        ("Size", f"{human_size(info.size)} ({info.size} bytes)"),
        ("Hash", info.hash or "-"),
    ])  # fmt: skip


# -- file delete, copy, diff ---------------------------------------------------------------------


def _change_summary(info: CommitInfo) -> str:
    if info.finished:
        return f"in commit {info.id} of {_commit_name(info)}"
    return f"staged in open commit {info.id} of {_commit_name(info)}"


@file_app.command("delete", help="Delete a file, or every file under a folder.")
def file_delete(
    ref: PathRefArg,
    message: MessageOpt = "",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        info = store.delete_file(ref, message)
    if as_json:
        _emit_json({"commit": _commit_json(info)})
    else:
        _say(f"Deleted {ref} {_change_summary(info)}")


@file_app.command(
    "copy",
    help=(
        "Copy a file or folder to another path, branch or repo (no bytes are copied). A DST "
        "path ending with '/' receives a file under its own name; without a path, the same path."
    ),
)
def file_copy(
    src: Annotated[
        str, typer.Argument(metavar="SRC", help="REF:/path to copy.", show_default=False)
    ],
    dst: Annotated[
        str, typer.Argument(metavar="DST", help="repo@branch[:/path] to write.", show_default=False)
    ],
    message: MessageOpt = "",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        s, d = parse_ref(src), parse_ref(dst)
        if dst.endswith("/") and s.path not in (None, "/") and d.path not in (None, "/"):
            if store.inspect_file(src).type == "file":
                name = (s.path or "").rsplit("/", 1)[-1]
                dst = f"{d.repo}@{d.ref}:{_join(d.path or '/', name)}"
        info = store.copy_file(src, dst, message)
    if as_json:
        _emit_json({"commit": _commit_json(info)})
    else:
        _say(f"Copied {src} to {dst} {_change_summary(info)}")


@file_app.command(
    "diff",
    help="Show what changed from OLD (default: NEW's parent) to NEW (NEW:/dir: in that folder).",
)
def file_diff(
    new: Annotated[str, typer.Argument(metavar="NEW", help="REF[:/dir].", show_default=False)],
    old: Annotated[
        str | None, typer.Argument(metavar="OLD", help="REF to compare with.", show_default=False)
    ] = None,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        entries = store.diff(new, old)
    if as_json:
        _emit_json([_diff_json(d) for d in entries])
        return
    if not entries:
        _say("No changes")
        return
    marks = {"added": "+", "deleted": "-", "modified": "~"}
    table = _table("", "Path", "Change", "Old size", "New size", right=("Old size", "New size"))
    for d in entries:
        table.add_row(
            marks.get(d.kind, "?"), d.path, d.kind,
            human_size(d.old.size if d.old else None), human_size(d.new.size if d.new else None),
        )  # fmt: skip
    _out().print(table)
    counts = {k: sum(1 for d in entries if d.kind == k) for k in marks}
    _say(", ".join(f"{n} {k}" for k, n in counts.items()))


# -- merge, fsck, gc -----------------------------------------------------------------------------


def _head_id(store: Store, ref: str) -> str | None:
    try:
        return store.inspect_commit(ref).id
    except CommitNotFound:  # a branch without commits
        return None


def merge_command(
    source: Annotated[
        str, typer.Argument(metavar="SOURCE", help="repo@branch to merge from.", show_default=False)
    ],
    target: Annotated[
        str, typer.Argument(metavar="TARGET", help="repo@branch to merge into.", show_default=False)
    ],
    message: MessageOpt = "",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        before = _head_id(store, target)
        try:
            result = store.merge(source, target, message)
        except MergeConflict as e:
            if as_json:
                _emit_json({"kind": "conflict", "commit": None, "conflicts": e.paths})
            _fail(str(e), details=("conflicting paths:", *(f"  {p}" for p in e.paths)))
    c = result.commit
    kind = result.kind
    if kind == "fast-forward" and before == c.id:  # the store calls a no-op move a fast-forward
        kind = "up-to-date"
    if as_json:
        _emit_json({"kind": kind, "commit": _commit_json(c), "conflicts": []})
    elif kind == "fast-forward":
        _say(f"fast-forward: {target} is now at {c.id}")
    elif kind == "merge":
        _say(f"merge: merged {source} into {target} as commit {c.id}")
    else:
        _say(f"up-to-date: {target} (at {c.id}) already has everything of {source}")


def fsck_command(
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Read every object and check its hash, or (faster) only that it exists.",
        ),
    ] = True,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        report = store.fsck(verify_objects=verify)
    if as_json:
        _emit_json({
            "ok": report.ok, "commits": report.commits, "trees": report.trees,
            "contents": report.contents, "objects": report.objects, "problems": report.problems,
        })  # fmt: skip
    else:
        checked = (
            f"Checked {report.commits} commit(s), {report.trees} tree(s), "
            f"{report.contents} content(s), {report.objects} object(s)"
        )
        _say(f"{checked}: {'no problems' if report.ok else f'{len(report.problems)} problem(s)'}")
        for problem in report.problems:
            _say(f"  {problem}")
    if not report.ok:
        _fail(
            f"fsck found {len(report.problems)} problem(s); restore the objects named from a "
            "backup, or delete the commits that use them"
        )


def gc_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what would be deleted.")
    ] = False,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0,
            metavar="SECONDS",
            help="Keep objects younger than this (a writer may not have committed them yet).",
        ),
    ] = 3600.0,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with _store(home, db, objects) as store:
        report = store.gc(dry_run=dry_run, grace_seconds=grace)
    if as_json:
        _emit_json({
            "dry_run": report.dry_run, "objects_deleted": report.objects_deleted,
            "bytes_freed": report.bytes_freed, "contents_deleted": report.contents_deleted,
            "nodes_deleted": report.nodes_deleted,
        })  # fmt: skip
        return
    verb = "Would delete" if dry_run else "Deleted"
    _say(
        f"{verb} {report.objects_deleted} object(s) ({human_size(report.bytes_freed)}), "
        f"{report.contents_deleted} content record(s), {report.nodes_deleted} tree node(s)"
    )


def register(app: typer.Typer) -> None:
    """Add the store commands (``repo``, ``branch``, ``commit``, ``file``, ``merge``, ``fsck``,
    ``gc``) to the ``headrace`` application."""
    for sub in (repo_app, branch_app, commit_app, file_app):
        app.add_typer(sub)
    app.command(
        "merge",
        help=(
            "Merge branch SOURCE into branch TARGET of the same repo: a fast-forward when "
            "TARGET has nothing new, else a merge commit. When a path changed differently on "
            "both sides nothing is written, the paths are listed and the exit status is 1."
        ),
    )(merge_command)
    app.command(
        "fsck",
        help=(
            "Check the store: every commit's tree, every file's content and object (exit 1 "
            "when a problem is found). Changes nothing."
        ),
    )(fsck_command)
    app.command(
        "gc",
        help=(
            "Delete tree nodes, contents and objects no commit uses (after deleted repos, "
            "branches or commits). Objects of open commits are kept."
        ),
    )(gc_command)
