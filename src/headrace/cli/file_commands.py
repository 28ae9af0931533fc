"""The ``file`` commands of ``headrace``: put, get, list, glob, inspect, delete, copy and diff
the files of a commit.

``file put`` reads local files and folders, stdin or fsspec URLs, streams them into the store
and, on a terminal, shows a progress bar when many or large files are written.

Options, output and exit statuses follow :mod:`headrace.cli.common`. :func:`register` adds the
commands to the ``headrace`` application.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.text import Text

from headrace.cli.common import (
    EXIT_USAGE,
    DbOpt,
    HomeOpt,
    JsonOpt,
    LimitOpt,
    MessageOpt,
    ObjectsOpt,
    PathRefArg,
    commit_json,
    commit_name,
    emit_json,
    fail,
    handle_errors,
    human_size,
    new_table,
    opened_store,
    output_console,
    print_fields,
    say,
    sub_app,
)
from headrace.cli.common import error_console as _error_console  # the put progress bar's console
from headrace.store.refs import normalize_path, parse_ref

if TYPE_CHECKING:
    from headrace.store.records import CommitInfo, DiffEntry, FileInfo

__all__ = ["file_app", "register"]

# A put shows a progress bar (on a terminal) from this many files or bytes on.
PROGRESS_MIN_FILES = 20
PROGRESS_MIN_BYTES = 32 * 1024 * 1024

file_app = sub_app(
    "file", "Put, get, list, glob, inspect, delete, copy and diff files of a commit."
)


def _file_json(f: FileInfo | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"path": f.path, "type": f.type, "size_bytes": f.size, "hash": f.hash}


def _diff_json(d: DiffEntry) -> dict[str, Any]:
    return {"path": d.path, "kind": d.kind, "old": _file_json(d.old), "new": _file_json(d.new)}


def _files_table(files: list[FileInfo], empty: str) -> None:
    if not files:
        say(empty)
        return
    table = new_table("Path", "Type", "Size", right=("Size",))
    for f in files:
        table.add_row(f.path + ("/" if f.type == "dir" and f.path != "/" else ""), f.type,
                      human_size(f.size))  # fmt: skip
    output_console().print(table)


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


def _put_plan(
    target: str, source: str, recursive: bool, follow_links: bool = False
) -> tuple[str, list[_Source]]:
    """The branch or open commit written to, and the files to put (usage errors exit 2)."""
    r = parse_ref(target)
    if r.ancestry:
        fail(
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
            fail(f"{target!r} names no file; give the path to write stdin to: "
                 "REPO@BRANCH:/path/file", EXIT_USAGE)  # fmt: skip
        stdin = typer.get_binary_stream("stdin")
        return commit, [_Source(base, None, lambda: nullcontext(stdin))]
    if "://" in source:
        return commit, _url_sources(source, recursive, base, single)
    local = Path(source)
    if local.is_dir():
        from headrace.store.writing import local_files

        files = local_files(str(local), follow_links=follow_links)
        return commit, [
            _Source(_join(base, rel), os.path.getsize(p), _opener(Path(p))) for rel, p in files
        ]
    if not local.is_file():
        fail(
            f"SOURCE {source!r} is not a local file or folder (use - for stdin, or a URL "
            "such as s3://bucket/key)",
            EXIT_USAGE,
        )
    if recursive:
        fail(f"-r: SOURCE {source!r} is a file, not a folder", EXIT_USAGE)
    return commit, [_Source(single(local.name), local.stat().st_size, _opener(local))]


def _url_sources(
    url: str, recursive: bool, base: str, single: Callable[[str], str]
) -> list[_Source]:
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as e:  # fsspec names the package that reads this kind of URL
        fail(f"SOURCE {url!r}: {e}; install it (pip install ...) to read such URLs")
    except ValueError as e:  # an unknown protocol
        fail(f"SOURCE {url!r}: {e}", EXIT_USAGE)
    if recursive and fs.isfile(root):
        fail(f"-r: SOURCE {url!r} is a file, not a folder", EXIT_USAGE)
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


def _appended(store: Any, commit: str, source: _Source) -> _Source:
    """``source`` with the file's current content (if any) in front of it (put --append)."""
    from headrace.store.errors import NotFound

    try:
        before = store.get_file(f"{commit}:{source.path}")
    except NotFound:
        return source

    @contextmanager
    def joined() -> Iterator[IO[bytes]]:
        with source.open() as f:
            yield cast(IO[bytes], _Joined(before, f))

    size = None if source.size is None else source.size + len(before)
    return _Source(source.path, size, joined)


class _Joined:
    """A reader of ``head`` then ``rest``."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._rest.read(n)


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
    append: Annotated[
        bool,
        typer.Option("--append", "-a", help="Add to the end of existing files, not replace."),
    ] = False,
    untar: Annotated[
        bool,
        typer.Option(
            "--untar", help="SOURCE is a tar archive (any compression): put the files in it."
        ),
    ] = False,
    follow_links: Annotated[
        bool,
        typer.Option(
            "--follow-links",
            help="Follow symbolic links inside a folder SOURCE that stay inside it (links are "
            "refused otherwise).",
        ),
    ] = False,
    message: MessageOpt = "",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    if source is None:
        if _stdin_is_terminal():
            fail("give SOURCE (a file, a folder, a URL, or - and pipe data in)", EXIT_USAGE)
        source = "-"
    with ExitStack() as cleanup:
        if untar:
            source = _untarred(source, target, cleanup)
        _file_put(
            target, source, recursive, append, follow_links, message, as_json, home, db, objects
        )


def _untarred(source: str, target: str, cleanup: ExitStack) -> str:
    """A temporary folder holding the files of the tar archive ``source`` (a file, a URL or
    - for stdin); the put then reads it as a folder."""
    import shutil
    import tarfile
    import tempfile

    _, sep, raw_path = target.partition(":")
    if sep and raw_path and not raw_path.endswith("/") and raw_path != "/":
        fail(f"--untar: {target!r} must name a folder (end it with '/')", EXIT_USAGE)
    folder = tempfile.mkdtemp(prefix="headrace-untar-")
    cleanup.callback(shutil.rmtree, folder, True)
    if source == "-":
        opened: AbstractContextManager[IO[bytes]] = nullcontext(typer.get_binary_stream("stdin"))
    elif "://" in source:
        import fsspec

        opened = fsspec.open(source, "rb")
    else:
        opened = open(source, "rb")  # noqa: SIM115 (closed by the with below)
    try:
        with opened as raw, tarfile.open(fileobj=raw, mode="r|*") as archive:
            archive.extractall(folder, filter="data")
    except (tarfile.TarError, OSError) as e:
        fail(f"--untar: SOURCE {source!r} is not a readable tar archive: {e}")
    return folder


def _file_put(
    target: str,
    source: str,
    recursive: bool,
    append: bool,
    follow_links: bool,
    message: str,
    as_json: bool,
    home: Path | None,
    db: str | None,
    objects: str | None,
) -> None:
    with handle_errors():
        commit, sources = _put_plan(target, source, recursive, follow_links)
        if not sources:
            fail(f"SOURCE {source!r} holds no files; nothing was written")
    written = [0]
    with opened_store(home, db, objects) as store, _put_progress(sources) as (advance, file_done):
        if append:
            sources = [_appended(store, commit, s) for s in sources]

        def counted(n: int) -> None:
            written[0] += n
            advance(n)

        # put_files reads file objects too (its annotation names only bytes and paths)
        files = cast(Any, _streams(sources, counted))
        info = store.put_files(commit, files, message, progress=file_done)
    if as_json:
        emit_json({"commit": commit_json(info), "file_count": len(sources),
                   "size_bytes": written[0]})  # fmt: skip
        return
    what = f"{len(sources)} file(s), {human_size(written[0])}"
    if info.finished:
        say(f"Wrote {what} to {commit_name(info)} in commit {info.id}")
    else:
        say(f"Staged {what} in open commit {info.id} of {commit_name(info)}")


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
    with opened_store(home, db, objects) as store:
        info = store.inspect_file(ref)
        if output is None or str(output) == "-":
            if info.type != "file":
                fail(f"{ref} is a folder; write it to a local folder with -o DIR", EXIT_USAGE)
            out = typer.get_binary_stream("stdout")
            for block in store.open_file(ref):
                out.write(block)
            out.flush()
            return
        written = store.get_file_to(ref, output)
    first = written[0] if len(written) == 1 else str(output)
    say(f"Wrote {len(written)} file(s), {human_size(info.size)} to {first}")


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
    with opened_store(home, db, objects) as store:
        after = normalize_path(start_after) if start_after else None
        files = store.list_files(ref, recursive=recursive, start_after=after, limit=limit)
    if as_json:
        emit_json([_file_json(f) for f in files])
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
                "Pachyderm's globs: * within a name, ** across folders, ? one character, "
                "[a-z] one of a set, {a,b} either, (a|b) @(..) ?(..) *(..) +(..) !(..) "
                "extended globs; a final / changes nothing."
            ),
            show_default=False,
        ),
    ],
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    ref, sep, glob = pattern.partition(":")
    with opened_store(home, db, objects) as store:
        files = store.glob_files(ref, glob if sep else None)
    if as_json:
        emit_json([_file_json(f) for f in files])
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
    with opened_store(home, db, objects) as store:
        info = store.inspect_file(ref)
    if as_json:
        emit_json(_file_json(info))
        return
    print_fields([
        ("Path", info.path),
        ("Type", info.type),
        ("Size", f"{human_size(info.size)} ({info.size} bytes)"),
        ("Hash", info.hash or "-"),
    ])  # fmt: skip


# -- file delete, copy, diff ---------------------------------------------------------------------


def _change_summary(info: CommitInfo) -> str:
    if info.finished:
        return f"in commit {info.id} of {commit_name(info)}"
    return f"staged in open commit {info.id} of {commit_name(info)}"


@file_app.command("delete", help="Delete a file, or every file under a folder.")
def file_delete(
    ref: PathRefArg,
    message: MessageOpt = "",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    with opened_store(home, db, objects) as store:
        info = store.delete_file(ref, message)
    if as_json:
        emit_json({"commit": commit_json(info)})
    else:
        say(f"Deleted {ref} {_change_summary(info)}")


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
    with opened_store(home, db, objects) as store:
        s, d = parse_ref(src), parse_ref(dst)
        if dst.endswith("/") and s.path not in (None, "/") and d.path not in (None, "/"):
            if store.inspect_file(src).type == "file":
                name = (s.path or "").rsplit("/", 1)[-1]
                dst = f"{d.repo}@{d.ref}:{_join(d.path or '/', name)}"
        info = store.copy_file(src, dst, message)
    if as_json:
        emit_json({"commit": commit_json(info)})
    else:
        say(f"Copied {src} to {dst} {_change_summary(info)}")


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
    with opened_store(home, db, objects) as store:
        entries = store.diff(new, old)
    if as_json:
        emit_json([_diff_json(d) for d in entries])
        return
    if not entries:
        say("No changes")
        return
    marks = {"added": "+", "deleted": "-", "modified": "~"}
    table = new_table("", "Path", "Change", "Old size", "New size", right=("Old size", "New size"))
    for d in entries:
        table.add_row(
            marks.get(d.kind, "?"), d.path, d.kind,
            human_size(d.old.size if d.old else None), human_size(d.new.size if d.new else None),
        )  # fmt: skip
    output_console().print(table)
    counts = {k: sum(1 for d in entries if d.kind == k) for k in marks}
    say(", ".join(f"{n} {k}" for k, n in counts.items()))


def register(app: typer.Typer) -> None:
    """Add the ``file`` group to ``app``."""
    app.add_typer(file_app)
