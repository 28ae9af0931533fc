"""``/api/v1/repos``: repos, branches, commits, files (list, download), diff and provenance.

A commit is named in the URL as the store names it after ``repo@``: a branch, a commit id, with
``^N`` / ``~N`` to go back. File paths are query parameters, absolute inside the commit; a path
with ``..`` or ``.`` segments, a backslash or a NUL is refused with 400 before the store sees it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from headrace.service.errors import BadRequest
from headrace.service.views import branch_view, commit_view, diff_view, file_view, repo_view
from headrace.stages.catalog import Catalog
from headrace.store.refs import validate_name
from headrace.store.store import Store

__all__ = ["checked_path", "checked_ref", "router"]

router = APIRouter(prefix="/api/v1/repos", tags=["repos"])

PathQuery = Annotated[str, Query(description="An absolute path inside the commit, e.g. /a/b.csv")]


def checked_path(path: str) -> str:
    """``path`` if it is a plain absolute path inside a commit; else :class:`BadRequest`.

    >>> checked_path("/data/a.csv")
    '/data/a.csv'
    >>> checked_path("/data/../../etc/passwd")
    Traceback (most recent call last):
    ...
    headrace.service.errors.BadRequest: path '/data/../../etc/passwd': '..' and '.' segments ...
    """
    if not path.startswith("/"):
        raise BadRequest(f"path {path!r} must be absolute (start with /)")
    if "\\" in path or "\x00" in path:
        raise BadRequest(f"path {path!r} contains a backslash or NUL, which are not allowed")
    if any(part in (".", "..") for part in path.split("/")):
        raise BadRequest(
            f"path {path!r}: '..' and '.' segments are not allowed; give the path from the "
            "commit's root"
        )
    return path


def checked_ref(repo: str, ref: str) -> str:
    """``repo@ref`` after checking the repo name and that ``ref`` holds no path."""
    validate_name(repo)
    if not ref or any(c in ref for c in ":/\\\x00@"):
        raise BadRequest(
            f"commit {ref!r}: give a branch or commit id (with ^N or ~N), without ':', '/' or '@'"
        )
    return f"{repo}@{ref}"


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.get("", summary="List repos")
def list_repos(request: Request) -> list[dict[str, Any]]:
    return [repo_view(r) for r in _store(request).list_repos()]


@router.get("/{repo}", summary="Inspect a repo")
def inspect_repo(request: Request, repo: str) -> dict[str, Any]:
    validate_name(repo)
    return repo_view(_store(request).inspect_repo(repo))


@router.get("/{repo}/branches", summary="List a repo's branches")
def list_branches(request: Request, repo: str) -> list[dict[str, Any]]:
    validate_name(repo)
    return [branch_view(b) for b in _store(request).list_branches(repo)]


@router.get("/{repo}/commits", summary="List commits, newest first")
def list_commits(
    request: Request,
    repo: str,
    branch: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    validate_name(repo)
    return [commit_view(c) for c in _store(request).list_commits(repo, branch, limit)]


@router.get("/{repo}/commits/{ref}", summary="Inspect a commit")
def inspect_commit(request: Request, repo: str, ref: str) -> dict[str, Any]:
    return commit_view(_store(request).inspect_commit(checked_ref(repo, ref)))


@router.get("/{repo}/commits/{ref}/files", summary="List a folder of a commit")
def list_files(
    request: Request,
    repo: str,
    ref: str,
    path: PathQuery = "/",
    recursive: bool = False,
    start_after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """A page of the entries under ``path``; pass the last path as ``start_after`` for more."""
    target = f"{checked_ref(repo, ref)}:{checked_path(path)}"
    if start_after is not None:
        checked_path(start_after)
    files = _store(request).list_files(target, recursive, start_after, limit + 1)
    return {
        "files": [file_view(f) for f in files[:limit]],
        "next_start_after": files[limit - 1].path if len(files) > limit else None,
    }


@router.get(
    "/{repo}/commits/{ref}/file",
    summary="Download a file",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_file(
    request: Request,
    repo: str,
    ref: str,
    path: PathQuery,
    max_bytes: Annotated[
        int | None, Query(ge=1, description="Only the first bytes (a preview).")
    ] = None,
) -> Response:
    store = _store(request)
    target = f"{checked_ref(repo, ref)}:{checked_path(path)}"
    info = store.inspect_file(target)
    if info.type != "file":
        raise BadRequest(f"{path} is a folder; list it with .../files?path={path}")
    name = quote(path.rsplit("/", 1)[-1], safe="")
    headers = {
        "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
        "X-Headrace-Size": str(info.size),
    }
    if max_bytes is not None:
        data = _head(store.open_file(target), max_bytes)
        return Response(data, media_type="application/octet-stream", headers=headers)
    return StreamingResponse(
        store.open_file(target), media_type="application/octet-stream", headers=headers
    )


def _head(chunks: Iterator[bytes], limit: int) -> bytes:
    out = bytearray()
    for chunk in chunks:
        out += chunk[: limit - len(out)]
        if len(out) >= limit:
            break
    return bytes(out)


TABLE_MAX_BYTES = 256 * 1024 * 1024  # a Parquet file larger than this is not previewed


@router.get("/{repo}/commits/{ref}/table", summary="The first rows of a Parquet file")
def table_preview(
    request: Request,
    repo: str,
    ref: str,
    path: PathQuery,
    limit: Annotated[int, Query(ge=1, le=1000, description="Rows to show.")] = 100,
) -> dict[str, Any]:
    """``columns`` (name and Arrow type), ``rows`` (the first ``limit``, each a list of values
    in column order; values JSON cannot hold are shown as text), ``total_rows`` (from the
    file's footer). A file that is not Parquet answers 400 naming it."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    store = _store(request)
    target = f"{checked_ref(repo, ref)}:{checked_path(path)}"
    info = store.inspect_file(target)
    if info.type != "file":
        raise BadRequest(f"{path} is a folder, not a Parquet file")
    if info.size > TABLE_MAX_BYTES:
        raise BadRequest(
            f"{path} is {info.size} bytes, more than the {TABLE_MAX_BYTES} a preview reads; "
            "download it instead"
        )
    data = b"".join(store.open_file(target))
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        batch = next(parquet.iter_batches(batch_size=limit), None)
    except (pa.ArrowInvalid, OSError) as e:
        raise BadRequest(f"{path} is not a Parquet file ({e})") from None
    schema = parquet.schema_arrow
    columns = [{"name": f.name, "type": str(f.type)} for f in schema]
    rows: list[list[Any]] = []
    if batch is not None:
        table = pa.Table.from_batches([batch]).slice(0, limit)
        rows = [[_json_value(v) for v in row.values()] for row in table.to_pylist()]
    return {"columns": columns, "rows": rows, "total_rows": parquet.metadata.num_rows}


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return repr(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


@router.get("/{repo}/commits/{ref}/diff", summary="What changed from another commit")
def diff(
    request: Request,
    repo: str,
    ref: str,
    old: Annotated[
        str | None, Query(description="The older commit of this repo (default: the parent).")
    ] = None,
    path: PathQuery = "/",
) -> list[dict[str, Any]]:
    new = checked_ref(repo, ref)
    older = checked_ref(repo, old) if old is not None else None
    return [diff_view(d) for d in _store(request).diff(new, older, checked_path(path))]


@router.get("/{repo}/commits/{ref}/provenance", summary="A commit's origins and consequences")
def provenance(request: Request, repo: str, ref: str) -> dict[str, Any]:
    """The commits this one was made from (transitively), those made from it, and the stage
    jobs of its trace (every job and commit caused by the same upstream commit). ``edges``
    (``from`` a commit ``to`` one made from it directly) join this commit and its provenance
    into a drawing; ``made_by`` maps those of them a stage job wrote to that job."""
    store = _store(request)
    catalog: Catalog = request.app.state.catalog
    target = checked_ref(repo, ref)
    commit = store.inspect_commit(target)
    trace = catalog.traces([commit.id]).get(commit.id, commit.id)
    jobs = catalog.list_jobs(trace=trace, limit=100)
    upstream = store.provenance(target)
    # the drawing's edges: each commit of the graph with the commits it was made from directly
    edges = [
        {"from": source.id, "to": c.id}
        for c in [commit, *upstream]
        for source in store.provenance(f"{c.repo}@{c.id}", transitive=False)
    ]
    drawn = {c.id for c in [commit, *upstream]}
    made_by = {
        j.output_commit: {"id": j.id, "stage": j.stage, "state": j.state}
        for t in set(catalog.traces(sorted(drawn)).values())
        for j in catalog.list_jobs(trace=t, limit=1000)
        if j.output_commit in drawn
    }
    return {
        "commit": commit_view(commit),
        "trace": trace,
        "edges": edges,
        "made_by": made_by,
        "provenance": [commit_view(c) for c in upstream],
        "subvenance": [commit_view(c) for c in store.subvenance(target)],
        "jobs": [
            {"id": j.id, "stage": j.stage, "state": j.state, "output_commit": j.output_commit}
            for j in jobs
        ],
    }
