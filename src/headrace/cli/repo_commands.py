"""The ``repo`` and ``branch`` commands of ``headrace``, and ``merge`` (of one branch into
another): create, list, inspect and delete repos and branches.

Options, output and exit statuses follow :mod:`headrace.cli.common`. :func:`register` adds the
commands to the ``headrace`` application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from headrace.cli.common import (
    BranchArg,
    DbOpt,
    HomeOpt,
    JsonOpt,
    MessageOpt,
    ObjectsOpt,
    commit_json,
    emit_json,
    fail,
    iso_utc,
    local_time,
    new_table,
    opened_store,
    output_console,
    print_fields,
    say,
    sub_app,
    valid_repo_name,
)
from headrace.store.errors import CommitNotFound, MergeConflict

if TYPE_CHECKING:
    from headrace.store.records import RepoInfo
    from headrace.store.store import Store

__all__ = ["branch_app", "merge_command", "register", "repo_app"]

repo_app = sub_app("repo", "Create, list, inspect and delete repos of the versioned store.")
branch_app = sub_app("branch", "Create, list and delete branches of a repo.")

RepoArg = Annotated[str, typer.Argument(metavar="REPO", help="The repo name.", show_default=False)]


def _repo_json(r: RepoInfo) -> dict[str, Any]:
    return {
        "name": r.name,
        "description": r.description,
        "created_at": iso_utc(r.created_at),
        "branches": list(r.branches),
    }


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
    with opened_store(home, db, objects) as store:
        info = store.create_repo(name, description)
    if as_json:
        emit_json(_repo_json(info))
    else:
        say(f"Created repo {info.name}")


@repo_app.command("list", help="List the repos.")
def repo_list(
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with opened_store(home, db, objects) as store:
        repos = store.list_repos()
    if as_json:
        emit_json([_repo_json(r) for r in repos])
        return
    if not repos:
        say("No repos; create one with: headrace repo create NAME")
        return
    table = new_table("Repo", "Branches", "Created", "Description")
    for r in repos:
        table.add_row(r.name, ", ".join(r.branches), local_time(r.created_at), r.description)
    output_console().print(table)


@repo_app.command("inspect", help="Show a repo: description, creation time, branches.")
def repo_inspect(
    name: RepoArg,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    name = valid_repo_name(name)
    with opened_store(home, db, objects) as store:
        info = store.inspect_repo(name)
    if as_json:
        emit_json(_repo_json(info))
        return
    print_fields([
        ("Repo", info.name),
        ("Description", info.description or "-"),
        ("Created", local_time(info.created_at)),
        ("Branches", ", ".join(info.branches) or "-"),
    ])  # fmt: skip


@repo_app.command("delete", help="Delete a repo with its branches and commits.")
def repo_delete(
    name: RepoArg,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    name = valid_repo_name(name)
    with opened_store(home, db, objects) as store:
        store.delete_repo(name)
    say(f"Deleted repo {name}; 'headrace gc' frees the space its files used")


# -- branch --------------------------------------------------------------------------------------


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
    with opened_store(home, db, objects) as store:
        info = store.create_branch(branch, head=head)
    if as_json:
        emit_json({"repo": info.repo, "name": info.name, "head": info.head})
    else:
        at = f"at {info.head}" if info.head else "with no commits"
        say(f"Created branch {info.repo}@{info.name} {at}")


@branch_app.command("list", help="List the branches of a repo and their head commits.")
def branch_list(
    repo: RepoArg,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    repo = valid_repo_name(repo)
    with opened_store(home, db, objects) as store:
        branches = store.list_branches(repo)
    if as_json:
        emit_json([{"repo": b.repo, "name": b.name, "head": b.head} for b in branches])
        return
    if not branches:
        say(f"Repo {repo} has no branches")
        return
    table = new_table("Branch", "Head")
    for b in branches:
        table.add_row(b.name, b.head or "-")
    output_console().print(table)


@branch_app.command("delete", help="Delete a branch (its commits stay reachable by id).")
def branch_delete(
    branch: BranchArg,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with opened_store(home, db, objects) as store:
        store.delete_branch(branch)
    say(f"Deleted branch {branch}")


# -- merge ---------------------------------------------------------------------------------------


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
    with opened_store(home, db, objects) as store:
        before = _head_id(store, target)
        try:
            result = store.merge(source, target, message)
        except MergeConflict as e:
            if as_json:
                emit_json({"kind": "conflict", "commit": None, "conflicts": e.paths})
            fail(str(e), details=("conflicting paths:", *(f"  {p}" for p in e.paths)))
    c = result.commit
    kind = result.kind
    if kind == "fast-forward" and before == c.id:  # the store calls a no-op move a fast-forward
        kind = "up-to-date"
    if as_json:
        emit_json({"kind": kind, "commit": commit_json(c), "conflicts": []})
    elif kind == "fast-forward":
        say(f"fast-forward: {target} is now at {c.id}")
    elif kind == "merge":
        say(f"merge: merged {source} into {target} as commit {c.id}")
    else:
        say(f"up-to-date: {target} (at {c.id}) already has everything of {source}")


def register(app: typer.Typer) -> None:
    """Add the ``repo`` and ``branch`` groups and the ``merge`` command to ``app``."""
    for sub in (repo_app, branch_app):
        app.add_typer(sub)
    app.command(
        "merge",
        help=(
            "Merge branch SOURCE into branch TARGET of the same repo: a fast-forward when "
            "TARGET has nothing new, else a merge commit. When a path changed differently on "
            "both sides nothing is written, the paths are listed and the exit status is 1."
        ),
    )(merge_command)
