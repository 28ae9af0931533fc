"""The maintenance commands of ``headrace``: ``fsck`` checks the store, ``gc`` frees what no
commit uses any more.

Options, output and exit statuses follow :mod:`headrace.cli.common`. :func:`register` adds the
commands to the ``headrace`` application.
"""

from __future__ import annotations

from typing import Annotated

import typer

from headrace.cli.common import (
    DbOpt,
    HomeOpt,
    JsonOpt,
    ObjectsOpt,
    emit_json,
    fail,
    human_size,
    opened_store,
    say,
)

__all__ = ["fsck_command", "gc_command", "register"]


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
    with opened_store(home, db, objects) as store:
        report = store.fsck(verify_objects=verify)
    if as_json:
        emit_json({
            "ok": report.ok, "commits": report.commits, "trees": report.trees,
            "contents": report.contents, "objects": report.objects, "problems": report.problems,
        })  # fmt: skip
    else:
        checked = (
            f"Checked {report.commits} commit(s), {report.trees} tree(s), "
            f"{report.contents} content(s), {report.objects} object(s)"
        )
        say(f"{checked}: {'no problems' if report.ok else f'{len(report.problems)} problem(s)'}")
        for problem in report.problems:
            say(f"  {problem}")
    if not report.ok:
        if any(p.startswith("metadata database: ") for p in report.problems):
            fail(
                f"fsck found {len(report.problems)} problem(s); the metadata database is "
                "damaged: restore it from a backup"
            )
        fail(
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
    with opened_store(home, db, objects) as store:
        report = store.gc(dry_run=dry_run, grace_seconds=grace)
    if as_json:
        emit_json({
            "dry_run": report.dry_run, "objects_deleted": report.objects_deleted,
            "bytes_freed": report.bytes_freed, "contents_deleted": report.contents_deleted,
            "nodes_deleted": report.nodes_deleted,
            "temp_files_removed": report.temp_files_removed,
            "temp_bytes_freed": report.temp_bytes_freed,
        })  # fmt: skip
        return
    verb = "Would delete" if dry_run else "Deleted"
    say(
        f"{verb} {report.objects_deleted} object(s) ({human_size(report.bytes_freed)}), "
        f"{report.contents_deleted} content record(s), {report.nodes_deleted} tree node(s), "
        f"{report.temp_files_removed} leftover temporary file(s) "
        f"({human_size(report.temp_bytes_freed)})"
    )


def register(app: typer.Typer) -> None:
    """Add the ``fsck`` and ``gc`` commands to ``app``."""
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
