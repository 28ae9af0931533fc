"""Names, references and paths of the versioned store.

References: ``repo`` (its default branch ``master``), ``repo@branch``, ``repo@<commit id>``,
ancestry with ``^`` (parent), ``^N`` or ``~N`` (N generations back), and an optional path:
``repo@branch^2:/data/a.csv``. Paths inside a commit are absolute and normalised:
``/dir/file``; ``..``, ``.``, empty segments, NUL and control characters are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from headrace.store.errors import InvalidName, InvalidPath, InvalidReference

__all__ = [
    "DEFAULT_BRANCH",
    "Ref",
    "file_path",
    "is_commit_id",
    "normalize_path",
    "parse_ref",
    "validate_name",
]

DEFAULT_BRANCH = "master"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_COMMIT_ID = re.compile(r"^[0-9a-f]{32}$")
_ANCESTRY = re.compile(r"(\^+|~+|\^\d+|~\d+)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]").search


def validate_name(name: str, what: str = "repo") -> str:
    """Return ``name`` if it is a valid repo or branch name, else raise InvalidName.

    >>> validate_name("sales-2024")
    'sales-2024'
    """
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith(".lock"):
        raise InvalidName(
            f"invalid {what} name {name!r}: use 1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def is_commit_id(text: str) -> bool:
    return bool(_COMMIT_ID.match(text))


def normalize_path(path: str, allow_root: bool = True) -> str:
    """``"a/b"`` → ``"/a/b"``; refuse anything that could escape or be ambiguous.

    >>> normalize_path("data/2024/a.csv"), normalize_path("/")
    ('/data/2024/a.csv', '/')
    >>> normalize_path("../etc/passwd")
    Traceback (most recent call last):
    ...
    headrace.store.errors.InvalidPath: invalid path '../etc/passwd': '..' is not allowed
    """
    if not isinstance(path, str):
        raise InvalidPath(f"a path must be a str, got {type(path).__name__}")
    if _CONTROL(path):
        raise InvalidPath(f"invalid path {path!r}: control characters and NUL are not allowed")
    if "\\" in path:
        raise InvalidPath(f"invalid path {path!r}: use '/' to separate directories")
    stripped = path.strip("/")
    if not stripped:
        if allow_root:
            return "/"
        raise InvalidPath("invalid path '/': a file path is needed here")
    parts = stripped.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            shown = part or "an empty segment ('//')"
            raise InvalidPath(
                f"invalid path {path!r}: {shown!r} is not allowed"
                if part
                else f"invalid path {path!r}: {shown} is not allowed"
            )
    return "/" + "/".join(parts)


@dataclass(frozen=True)
class Ref:
    """A parsed reference: ``repo@ref^ancestry:path``."""

    repo: str
    ref: str = DEFAULT_BRANCH
    ancestry: int = 0
    path: str | None = None

    def __str__(self) -> str:
        text = f"{self.repo}@{self.ref}"
        if self.ancestry:
            text += f"^{self.ancestry}"
        if self.path is not None:
            text += f":{self.path}"
        return text

    @property
    def is_commit(self) -> bool:
        return is_commit_id(self.ref)


def parse_ref(text: str, default_branch: str = DEFAULT_BRANCH) -> Ref:
    """Parse ``repo[@branch|commit][^N|~N|^^|~~][:/path]``.

    ``^`` and ``~`` repeated go back one commit each, as in Pachyderm. ``branch.N`` (the
    N-th commit of the branch, counting from its first) is resolved with the branch.

    >>> parse_ref("sales@master^2:/2024/jan.csv")
    Ref(repo='sales', ref='master', ancestry=2, path='/2024/jan.csv')
    >>> parse_ref("sales@master~~").ancestry
    2
    >>> parse_ref("sales")
    Ref(repo='sales', ref='master', ancestry=0, path=None)
    """
    if not isinstance(text, str) or not text:
        raise InvalidReference(f"empty reference {text!r}; write repo@branch or repo@commit")
    head, sep, path_part = text.partition(":")
    path = normalize_path(path_part) if sep else None
    repo, at, ref = head.partition("@")
    try:
        validate_name(repo)
    except InvalidName as e:
        raise InvalidReference(f"invalid reference {text!r}: {e}") from None
    if not at:
        return Ref(repo, default_branch, 0, path)
    ancestry = 0
    match = _ANCESTRY.search(ref)
    if match:
        suffix = match.group(1)
        ref = ref[: match.start()]
        if suffix[1:].isdigit():
            ancestry = int(suffix[1:])
        else:
            ancestry = len(suffix)
    if not ref:
        raise InvalidReference(f"invalid reference {text!r}: name a branch or commit after '@'")
    if not is_commit_id(ref):
        try:
            validate_name(ref, "branch")
        except InvalidName as e:
            raise InvalidReference(f"invalid reference {text!r}: {e}") from None
    return Ref(repo, ref, ancestry, path)


def file_path(r: Ref, text: str) -> str:
    """The file path a reference names (``text`` is the reference as given, for the error).

    >>> file_path(parse_ref("sales@master:/jan.csv"), "sales@master:/jan.csv")
    '/jan.csv'
    """
    if r.path is None or r.path == "/":
        raise InvalidPath(f"{text!r} names no file: write repo@branch:/path/to/file")
    return r.path
