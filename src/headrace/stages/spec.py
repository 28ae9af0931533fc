"""The stage spec: YAML or JSON parsed into frozen dataclasses, validated and versioned.

A spec names the stage, its input tree, its transform and how it runs::

    name: clean
    input:
      cross:
        - pfs: {repo: orders, glob: "/*.csv"}
        - pfs: {repo: customers, glob: "/"}
    transform:
      python: "shop.clean:run"
    parallelism: 4

Inputs nest as in Pachyderm: ``cross`` and ``union`` hold any inputs, ``join`` and ``group``
hold ``pfs`` inputs only (each with ``join_on`` / ``group_by``, a template over the glob's
``(...)`` capture groups such as ``"$1"``), ``cron`` is a leaf ticking on a schedule
(:func:`expand_cron` gives its value sets). ``egress`` is an fsspec URL, or
``{sql: <SQLAlchemy URL>, table: <name>, format: csv|jsonl}`` (a :class:`SqlEgress`).

:func:`load_spec` reads a file, a text or an already parsed mapping. Every problem raises
:class:`SpecError` whose message starts with the field path, e.g.
``input.cross[1].pfs.glob: must start with '/'``. Defaults are filled in, durations become
seconds and ``name`` of a pfs input defaults to its repo, so two specs that mean the same
compare equal and have the same :attr:`StageSpec.version`: a hash of what decides a datum's
output (input tree, transform, salt), which datum hashes build on.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeAlias

import yaml

from headrace.store.errors import InvalidName
from headrace.store.refs import DEFAULT_BRANCH, validate_name

__all__ = [
    "CronFields",
    "CronInput",
    "CrossInput",
    "GroupInput",
    "Input",
    "JoinInput",
    "PfsInput",
    "SpecError",
    "SqlEgress",
    "StageSpec",
    "Transform",
    "UnionInput",
    "expand_cron",
    "hide_password",
    "iter_inputs",
    "load_spec",
    "split_capture_groups",
]

Reprocess: TypeAlias = Literal["until_success", "every_job"]
_REPROCESS = ("until_success", "every_job")
_RESERVED_ENV = ("HEADRACE_INPUT", "HEADRACE_OUTPUT")


class SpecError(ValueError):
    """A stage spec that does not parse or validate; ``path`` is the offending field path."""

    def __init__(self, path: str, problem: str, source: str | None = None) -> None:
        self.path = path
        self.problem = problem
        self.source = source
        text = f"{path}: {problem}" if path else problem
        super().__init__(f"{source}: {text}" if source else text)

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, str, str | None]]:
        return (SpecError, (self.path, self.problem, self.source))


# ---------------------------------------------------------------------------------------------
# The spec as data


@dataclass(frozen=True)
class PfsInput:
    """Files of ``repo@branch`` split into datums by ``glob``, seen under ``name``."""

    repo: str
    glob: str = "/"
    branch: str = DEFAULT_BRANCH
    name: str = ""
    empty_files: bool = False
    join_on: str | None = None
    outer_join: bool = False
    group_by: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.repo)


@dataclass(frozen=True)
class CrossInput:
    """Every combination of one datum from each input."""

    inputs: tuple[Input, ...]


@dataclass(frozen=True)
class UnionInput:
    """The datums of every input, one after another."""

    inputs: tuple[Input, ...]


@dataclass(frozen=True)
class JoinInput:
    """Datums of pfs inputs whose ``join_on`` values are equal, one datum per value."""

    inputs: tuple[PfsInput, ...]


@dataclass(frozen=True)
class GroupInput:
    """All files of the pfs inputs with equal ``group_by`` values, one datum per value."""

    inputs: tuple[PfsInput, ...]


@dataclass(frozen=True)
class CronInput:
    """A tick on a schedule: a cron expression, a macro such as ``@daily`` or ``@every 10s``."""

    name: str
    spec: str
    overwrite: bool = False

    @property
    def every(self) -> float | None:
        """The period in seconds of an ``@every`` schedule, else None."""
        if self.spec.startswith("@every "):
            return _parse_duration(self.spec[len("@every ") :], "")
        return None


Input: TypeAlias = PfsInput | CrossInput | UnionInput | JoinInput | GroupInput | CronInput


@dataclass(frozen=True)
class SqlEgress:
    """Load the output commit's ``.csv`` (or ``.jsonl``) files into one SQL ``table``.

    ``url`` is a SQLAlchemy URL (``sqlite:////srv/out.db``, ``postgresql://user@host/db``);
    its repr hides any password.

    >>> SqlEgress("postgresql://etl:secret@db/shop", "orders")
    SqlEgress(url='postgresql://etl:***@db/shop', table='orders', format='csv')
    """

    url: str
    table: str
    format: Literal["csv", "jsonl"] = "csv"

    def __repr__(self) -> str:
        return (
            f"SqlEgress(url={hide_password(self.url)!r}, table={self.table!r}, "
            f"format={self.format!r})"
        )


_USER_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^/@:?#]*):[^/@?#]*@")
_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|pwd|secret|token)=)[^&#]*", re.IGNORECASE)


def hide_password(url: str) -> str:
    """``url`` with its password (in ``user:password@`` or a ``password=`` query) as ``***``.

    >>> hide_password("postgresql://etl:s3cret@db:5432/shop?password=x&sslmode=require")
    'postgresql://etl:***@db:5432/shop?password=***&sslmode=require'
    >>> hide_password("s3://bucket/out")
    's3://bucket/out'
    """
    return _QUERY_PASSWORD.sub(r"\1***", _USER_PASSWORD.sub(r"\1:***@", url))


@dataclass(frozen=True)
class Transform:
    """What runs per datum: exactly one of ``python``, ``pipeline`` or ``cmd``.

    ``env`` holds ``(name, value)`` pairs sorted by name; :attr:`env_dict` gives a dict.
    """

    python: str | None = None
    pipeline: str | None = None
    cmd: tuple[str, ...] | None = None
    stdin: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    environment: str | None = None

    @property
    def kind(self) -> Literal["python", "pipeline", "cmd"]:
        """Which of the three transforms this is."""
        if self.python is not None:
            return "python"
        if self.pipeline is not None:
            return "pipeline"
        return "cmd"

    @property
    def entry_point(self) -> tuple[str, str] | None:
        """``(module, function)`` of a python or pipeline transform, None for cmd."""
        target = self.python if self.python is not None else self.pipeline
        if target is None:
            return None
        module, _, function = target.partition(":")
        return module, function

    @property
    def env_dict(self) -> dict[str, str]:
        """The environment variables as a dict."""
        return dict(self.env)


@dataclass(frozen=True)
class StageSpec:
    """A validated stage spec. Build it with :func:`load_spec` or :meth:`from_dict`.

    >>> spec = load_spec('''
    ... name: clean
    ... input: {pfs: {repo: orders, glob: "/*.csv"}}
    ... transform: {python: "shop.clean:run"}
    ... datum_timeout: 5m
    ... ''')
    >>> spec.input
    PfsInput(repo='orders', glob='/*.csv', branch='master', name='orders', empty_files=False, join_on=None, outer_join=False, group_by=None)
    >>> spec.datum_timeout, spec.datum_tries
    (300.0, 3)
    >>> spec.to_dict()
    {'name': 'clean', 'input': {'pfs': {'repo': 'orders', 'glob': '/*.csv'}}, 'transform': {'python': 'shop.clean:run'}, 'datum_timeout': 300}
    >>> load_spec(spec.to_dict()) == spec
    True
    """  # noqa: E501

    name: str
    input: Input
    transform: Transform
    description: str = ""
    parallelism: int = 1
    datum_tries: int = 3
    datum_timeout: float | None = None
    job_timeout: float | None = None
    output_branch: str = DEFAULT_BRANCH
    egress: str | SqlEgress | None = None
    salt: str = ""
    reprocess: Reprocess = "until_success"
    datum_batching: bool | None = None  # None: a worker serves many datums (python, pipeline)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> StageSpec:
        """Validate a parsed spec; ``source`` (a file name) prefixes error messages."""
        try:
            return _parse_stage(data)
        except SpecError as err:
            if source is None:
                raise
            raise SpecError(err.path, err.problem, source) from None

    def to_dict(self, include_defaults: bool = False) -> dict[str, Any]:
        """The normalised spec as plain data; :meth:`from_dict` of it gives back an equal spec.

        Fields at their default are left out unless ``include_defaults``; durations are seconds.
        """
        out: dict[str, Any] = {"name": self.name}
        if self.description or include_defaults:
            out["description"] = self.description
        out["input"] = _input_to_dict(self.input, include_defaults)
        out["transform"] = _transform_to_dict(self.transform, include_defaults)
        for key in (
            "parallelism",
            "datum_tries",
            "datum_timeout",
            "job_timeout",
            "output_branch",
            "egress",
            "salt",
            "reprocess",
            "datum_batching",
        ):
            value = getattr(self, key)
            if isinstance(value, SqlEgress):
                out[key] = _sql_egress_to_dict(value, include_defaults)
            elif include_defaults or value != _STAGE_DEFAULTS[key]:
                out[key] = _plain_number(value)
        return out

    @cached_property
    def version(self) -> str:
        """A stable hash (32 hex digits) of what decides outputs: input tree, transform, salt.

        Changing the description, parallelism, retries, timeouts, egress, output branch,
        reprocess policy or batching leaves it unchanged; so does spelling a default out.
        """
        payload = {
            "format": 1,
            "input": _input_to_dict(self.input, False),
            "transform": _transform_to_dict(self.transform, False),
            "salt": self.salt,
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()

    @property
    def input_names(self) -> tuple[str, ...]:
        """The names of every pfs and cron input, in tree order."""
        return tuple(
            node.name
            for _, node in iter_inputs(self.input)
            if isinstance(node, PfsInput | CronInput)
        )


_STAGE_DEFAULTS: dict[str, Any] = {
    "description": "",
    "parallelism": 1,
    "datum_tries": 3,
    "datum_timeout": None,
    "job_timeout": None,
    "output_branch": DEFAULT_BRANCH,
    "egress": None,
    "salt": "",
    "reprocess": "until_success",
    "datum_batching": None,
}


def iter_inputs(node: Input, path: str = "input") -> Iterator[tuple[str, Input]]:
    """Every input of the tree with its field path, parents before children.

    >>> tree = CrossInput((PfsInput("a", "/*"), CronInput("tick", "@daily")))
    >>> [path for path, _ in iter_inputs(tree)]
    ['input.cross', 'input.cross[0].pfs', 'input.cross[1].cron']
    """
    if isinstance(node, PfsInput):
        yield f"{path}.pfs", node
    elif isinstance(node, CronInput):
        yield f"{path}.cron", node
    else:
        kind = _KIND_OF[type(node)]
        yield f"{path}.{kind}", node
        for i, child in enumerate(node.inputs):
            yield from iter_inputs(child, f"{path}.{kind}[{i}]")


_KIND_OF: dict[type, str] = {
    CrossInput: "cross",
    UnionInput: "union",
    JoinInput: "join",
    GroupInput: "group",
}


# ---------------------------------------------------------------------------------------------
# Loading


def load_spec(source: str | os.PathLike[str] | Mapping[str, Any]) -> StageSpec:
    """Load a stage spec from a file path, a YAML or JSON text, or a parsed mapping.

    A ``str`` is read as a file if it is one line naming an existing file or ending in
    ``.yaml``, ``.yml`` or ``.json``; otherwise it is the spec's text.

    >>> load_spec('{"name": "s", "input": {"pfs": {"repo": "r", "glob": "*"}}, '
    ...           '"transform": {"cmd": ["true"]}}')
    Traceback (most recent call last):
    ...
    headrace.stages.spec.SpecError: input.pfs.glob: must start with '/', got '*'
    """
    if isinstance(source, Mapping):
        return StageSpec.from_dict(source)
    if isinstance(source, os.PathLike) or _looks_like_file(source):
        path = Path(source)
        text = path.read_text(encoding="utf-8")
        return StageSpec.from_dict(_parse_text(text, str(path)), source=str(path))
    return StageSpec.from_dict(_parse_text(source, None))


def _looks_like_file(text: str) -> bool:
    if "\n" in text or text.lstrip().startswith("{"):
        return False
    return text.endswith((".yaml", ".yml", ".json")) or Path(text).is_file()


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key; the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _parse_text(text: str, source: str | None) -> Any:
    stripped = text.lstrip()
    if (source is not None and source.endswith(".json")) or stripped.startswith("{"):

        def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, value in pairs:
                if key in out:
                    raise SpecError("", f"not valid JSON: the key {key!r} appears twice", source)
                out[key] = value
            return out

        try:
            return json.loads(text, object_pairs_hook=unique)
        except json.JSONDecodeError as err:
            raise SpecError("", f"not valid JSON: {err}", source) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as err:
        raise SpecError("", f"not valid YAML: {err}", source) from None


# ---------------------------------------------------------------------------------------------
# Validation helpers


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _fields(data: object, path: str, known: tuple[str, ...], what: str) -> Mapping[str, Any]:
    """Check ``data`` is a mapping with only ``known`` keys; drop keys whose value is null."""
    if not isinstance(data, Mapping):
        raise SpecError(
            path or "spec", f"{what} must be a mapping of fields, got {_describe(data)}"
        )
    for key in data:
        if not isinstance(key, str):
            raise SpecError(path or "spec", f"field names must be strings, got {key!r}")
        if key not in known:
            raise SpecError(_join(path, key), _unknown(key, known))
    return {k: v for k, v in data.items() if v is not None}


def _unknown(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown field {key!r}; did you mean {close[0]!r}?"
    return f"unknown field {key!r}; known fields here: {', '.join(known)}"


def _required(fields: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in fields:
        raise SpecError(_join(path, key), "is required")
    return fields[key]


def _string(value: object, path: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        hint = " (quote it)" if isinstance(value, int | float | bool) else ""
        raise SpecError(path, f"must be a string{hint}, got {_describe(value)}")
    if not allow_empty and not value.strip():
        raise SpecError(path, "must not be empty")
    if _CONTROL(value.replace("\n", "").replace("\t", "")):
        raise SpecError(path, f"must not contain control characters, got {value!r}")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]").search


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(path, f"must be true or false, got {_describe(value)}")
    return value


def _int(value: object, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, f"must be a whole number, got {_describe(value)}")
    if value < minimum:
        raise SpecError(path, f"must be at least {minimum}, got {value}")
    return value


def _name(value: object, path: str, what: str) -> str:
    text = _string(value, path)
    try:
        return validate_name(text, what)
    except InvalidName as err:
        raise SpecError(path, str(err)) from None


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _parse_duration(value: object, path: str) -> float:
    """Seconds of ``30``, ``2.5``, ``"30s"``, ``"5m"``, ``"1h30m"`` or ``"250ms"``; > 0."""
    if isinstance(value, bool):
        seconds = math.nan
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            if not _DURATION.fullmatch(text):
                seconds = math.nan
            else:
                seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    else:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise SpecError(
            path,
            "must be a positive duration such as 30 (seconds), '30s', '5m', '1h30m' or "
            f"'250ms', got {_describe(value)}",
        )
    return seconds


def _plain_number(value: Any) -> Any:
    """Floats that are whole numbers as ints, so ``5m`` round-trips as ``300``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ---------------------------------------------------------------------------------------------
# Globs and capture groups


def split_capture_groups(glob: str) -> tuple[str, int]:
    """The glob without its ``(...)`` capture-group parentheses, and the number of groups.

    Groups are numbered by their opening parenthesis and may nest; ``\\(`` and ``\\)`` are
    literal parentheses. The store's glob treats parentheses literally, so datum code globs
    with the first value.

    >>> split_capture_groups("/(*)-(*).csv")
    ('/*-*.csv', 2)
    >>> split_capture_groups("/((*)-*)/x")
    ('/*-*/x', 2)
    """
    out: list[str] = []
    groups = 0
    depth = 0
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "\\" and i + 1 < len(glob):
            out.append(glob[i : i + 2])
            i += 2
            continue
        if c == "(":
            if glob.startswith("()", i):
                raise ValueError("a capture group '()' must not be empty")
            depth += 1
            groups += 1
        elif c == ")":
            if not depth:
                raise ValueError("')' closes no capture group; write '\\)' for a literal one")
            depth -= 1
        else:
            out.append(c)
        i += 1
    if depth:
        raise ValueError("a '(' capture group is never closed; write '\\(' for a literal one")
    return "".join(out), groups


def _glob(value: object, path: str) -> tuple[str, int]:
    glob = _string(value, path)
    if not glob.startswith("/"):
        raise SpecError(path, f"must start with '/', got {glob!r}")
    if "\n" in glob or "\t" in glob:
        raise SpecError(path, f"must not contain tabs or newlines, got {glob!r}")
    segments = glob.strip("/").split("/") if glob.strip("/") else []
    for seg in segments:
        if seg in ("", ".", ".."):
            shown = repr(seg) if seg else "an empty segment ('//')"
            raise SpecError(path, f"{shown} is not allowed in a glob, got {glob!r}")
    try:
        _, groups = split_capture_groups(glob)
    except ValueError as err:
        raise SpecError(path, f"{err}, got {glob!r}") from None
    return glob, groups


_GROUP_REF = re.compile(r"\$(?:\{(\d+)\}|(\d+))")


def _capture_template(value: object, path: str, glob: str, groups: int) -> str:
    template = _string(value, path)
    refs = [int(a or b) for a, b in _GROUP_REF.findall(template)]
    if not refs:
        raise SpecError(
            path,
            f"must refer to at least one capture group of the glob, like '$1', got {template!r}",
        )
    for ref in refs:
        if not 1 <= ref <= groups:
            if groups == 0:
                fix = "put parentheses around the part to match on, e.g. '/(*).csv'"
            else:
                fix = f"it has {groups} group{'s' if groups > 1 else ''} ($1..${groups})"
            raise SpecError(
                path, f"refers to ${ref} but the glob {glob!r} has no such group; {fix}"
            )
    return template


# ---------------------------------------------------------------------------------------------
# Inputs

_INPUT_KINDS = ("pfs", "cross", "union", "join", "group", "cron")
_PFS_FIELDS = ("repo", "branch", "glob", "name", "empty_files", "join_on", "outer_join", "group_by")
_CRON_FIELDS = ("name", "spec", "overwrite")
_Context = Literal["top", "join", "group"]


def _parse_input(data: object, path: str, context: _Context = "top") -> Input:
    fields = _fields(data, path, _INPUT_KINDS, "an input")
    kinds = [k for k in _INPUT_KINDS if k in fields]
    if not kinds:
        raise SpecError(path, f"give one of {', '.join(_INPUT_KINDS)}")
    if len(kinds) > 1:
        raise SpecError(path, f"give exactly one of {', '.join(_INPUT_KINDS)}; got {kinds}")
    kind = kinds[0]
    at = _join(path, kind)
    value = fields[kind]
    if context != "top" and kind != "pfs":
        raise SpecError(at, f"a {context} combines pfs inputs only; use a pfs input here")
    if kind == "pfs":
        return _parse_pfs(value, at, context)
    if kind == "cron":
        return _parse_cron(value, at)
    if not isinstance(value, list):
        raise SpecError(at, f"must be a list of inputs, got {_describe(value)}")
    minimum = 2 if kind == "join" else 1
    if len(value) < minimum:
        raise SpecError(at, f"needs at least {minimum} input{'s' if minimum > 1 else ''}")
    if kind in ("join", "group"):
        ctx: _Context = "join" if kind == "join" else "group"
        pfs = tuple(_parse_input(v, f"{at}[{i}]", ctx) for i, v in enumerate(value))
        leaves = tuple(p for p in pfs if isinstance(p, PfsInput))
        return JoinInput(leaves) if kind == "join" else GroupInput(leaves)
    children = tuple(_parse_input(v, f"{at}[{i}]") for i, v in enumerate(value))
    return CrossInput(children) if kind == "cross" else UnionInput(children)


def _parse_pfs(data: object, path: str, context: _Context) -> PfsInput:
    fields = _fields(data, path, _PFS_FIELDS, "a pfs input")
    repo = _name(_required(fields, "repo", path), _join(path, "repo"), "repo")
    glob, groups = _glob(_required(fields, "glob", path), _join(path, "glob"))
    branch = _name(fields.get("branch", DEFAULT_BRANCH), _join(path, "branch"), "branch")
    name = _name(fields.get("name", repo), _join(path, "name"), "input")
    empty_files = _bool(fields.get("empty_files", False), _join(path, "empty_files"))
    for key, needed in (("join_on", "join"), ("outer_join", "join"), ("group_by", "group")):
        if key in fields and context != needed:
            raise SpecError(_join(path, key), f"only applies to a pfs input inside a '{needed}'")
    join_on = group_by = None
    if context == "join":
        raw = _required(fields, "join_on", path)
        join_on = _capture_template(raw, _join(path, "join_on"), glob, groups)
    if context == "group":
        raw = _required(fields, "group_by", path)
        group_by = _capture_template(raw, _join(path, "group_by"), glob, groups)
    outer_join = _bool(fields.get("outer_join", False), _join(path, "outer_join"))
    return PfsInput(repo, glob, branch, name, empty_files, join_on, outer_join, group_by)


def _parse_cron(data: object, path: str) -> CronInput:
    fields = _fields(data, path, _CRON_FIELDS, "a cron input")
    name = _name(_required(fields, "name", path), _join(path, "name"), "input")
    spec = _cron_spec(_required(fields, "spec", path), _join(path, "spec"))
    overwrite = _bool(fields.get("overwrite", False), _join(path, "overwrite"))
    return CronInput(name, spec, overwrite)


# Each macro and the 5-field expression it stands for.
_CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (field name, lowest, highest, names of lowest.. or None, '?' allowed)
_CRON_LAYOUT: tuple[tuple[str, int, int, tuple[str, ...] | None, bool], ...] = (
    ("minute", 0, 59, None, False),
    ("hour", 0, 23, None, False),
    ("day of month", 1, 31, None, True),
    ("month", 1, 12, _MONTHS, False),
    ("day of week", 0, 7, _DAYS, True),
)
_CRON_ITEM = re.compile(r"(\*|\?|[A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?(?:/(\d+))?")


def _cron_spec(value: object, path: str) -> str:
    """Check a 5-field cron expression, a macro (``@daily``) or ``@every <duration>``."""
    text = " ".join(_string(value, path).split())
    example = "use 5 fields ('*/15 * * * *'), a macro such as '@daily', or '@every 10s'"
    if text.startswith("@"):
        if text.startswith("@every"):
            rest = text[len("@every") :].strip()
            if not rest:
                raise SpecError(path, f"'@every' needs a duration such as '@every 10s'; {example}")
            _parse_duration(rest, path)
            return f"@every {rest}"
        if text.lower() in _CRON_MACROS:
            return text.lower()
        raise SpecError(path, f"unknown schedule {text!r}; {example}")
    parts = text.split(" ")
    if len(parts) != 5:
        raise SpecError(
            path, f"a cron expression has 5 fields, got {len(parts)} in {text!r}; {example}"
        )
    for part, (field, low, high, names, question) in zip(parts, _CRON_LAYOUT, strict=True):
        for item in part.split(","):
            problem = _cron_item(item, low, high, names, question)
            if problem:
                raise SpecError(path, f"{field} field {part!r}: {problem}; {example}")
    fields = _expand_cron_fields(text)
    if not fields.any_day and fields.any_weekday and not _day_occurs(fields):
        raise SpecError(
            path,
            f"day of month field {parts[2]!r} never falls in month field {parts[3]!r}, so "
            f"{text!r} would never fire; pick days that exist in those months",
        )
    return text


def _cron_item(
    item: str, low: int, high: int, names: tuple[str, ...] | None, question: bool
) -> str | None:
    match = _CRON_ITEM.fullmatch(item)
    if not match:
        return f"cannot read {item!r}"
    start, end, step = match.groups()
    if step is not None and int(step) < 1:
        return "a step must be at least 1"
    if start in ("*", "?"):
        if start == "?" and not question:
            return "'?' is only allowed for the day of month or day of week"
        return f"cannot read {item!r}" if end is not None else None
    for text in (start, end):
        if text is None:
            continue
        if text.isdigit():
            number = int(text)
        elif names is not None and text.lower() in names:
            number = names.index(text.lower()) + low
        else:
            return f"cannot read {text!r}"
        if not low <= number <= high:
            return f"{number} is outside {low}-{high}"
    if end is not None and _cron_number(start, low, names) > _cron_number(end, low, names):
        return f"the range {item!r} runs backwards"
    return None


def _cron_number(text: str, low: int, names: tuple[str, ...] | None) -> int:
    return int(text) if text.isdigit() else (names or ()).index(text.lower()) + low


class CronFields(NamedTuple):
    """The values each field of a 5-field cron expression allows, each sorted ascending.

    ``weekdays`` run 0 (Sunday) to 6 (7 is folded into 0). ``any_day`` / ``any_weekday`` say
    the day-of-month / day-of-week field is unrestricted (``*`` or ``?``, without a step
    above 1). When both are restricted a day matches if either field matches; otherwise
    both must.
    """

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]
    any_day: bool
    any_weekday: bool


def expand_cron(spec: str, path: str = "spec") -> CronFields:
    """The value sets of a cron expression or macro (validated first; errors name ``path``).

    ``N/step`` runs from N to the field's end; ``*`` and ``N/step`` in the day of week end at
    Saturday (6), so 7 means Sunday only when written.

    >>> f = expand_cron("*/20 9-17/4 * jan,jul mon-fri")
    >>> f.minutes, f.hours, f.months, f.weekdays, f.any_day, f.any_weekday
    ((0, 20, 40), (9, 13, 17), (1, 7), (1, 2, 3, 4, 5), True, False)
    >>> expand_cron("@weekly").weekdays
    (0,)
    >>> expand_cron("@every 10s")
    Traceback (most recent call last):
    ...
    headrace.stages.spec.SpecError: spec: '@every 10s' is a period, not calendar fields; ...
    """
    text = _cron_spec(spec, path)
    if text.startswith("@every "):
        raise SpecError(
            path,
            f"{text!r} is a period, not calendar fields; its ticks are the previous tick plus "
            "CronInput.every seconds",
        )
    return _expand_cron_fields(_CRON_MACROS.get(text, text))


@lru_cache(maxsize=512)
def _expand_cron_fields(text: str) -> CronFields:
    """The value sets of a 5-field expression that :func:`_cron_spec` already accepted."""
    sets: list[tuple[int, ...]] = []
    stars: list[bool] = []
    for part, (field, low, high, names, _) in zip(text.split(" "), _CRON_LAYOUT, strict=True):
        top = 6 if field == "day of week" else high
        chosen: set[int] = set()
        star = False
        for item in part.split(","):
            match = _CRON_ITEM.fullmatch(item)
            assert match is not None, f"{item!r} was validated"
            start, end, step_text = match.groups()
            step = int(step_text) if step_text is not None else 1
            if start in ("*", "?"):
                first, last = low, top
                star = star or step == 1
            else:
                first = _cron_number(start, low, names)
                if end is not None:
                    last = _cron_number(end, low, names)
                else:
                    last = max(first, top) if step_text is not None else first
            chosen.update(range(first, last + 1, step))
        if field == "day of week" and 7 in chosen:
            chosen.discard(7)
            chosen.add(0)
        sets.append(tuple(sorted(chosen)))
        stars.append(star)
    minutes, hours, days, months, weekdays = sets
    return CronFields(minutes, hours, days, months, weekdays, stars[2], stars[4])


# The most days each month can have (February in a leap year).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _day_occurs(fields: CronFields) -> bool:
    """Whether some allowed day of month exists in some allowed month."""
    return any(day <= _MONTH_DAYS[month - 1] for month in fields.months for day in fields.days)


def _check_unique_names(root: Input) -> None:
    seen: dict[str, str] = {}
    for path, node in iter_inputs(root):
        if not isinstance(node, PfsInput | CronInput):
            continue
        other = seen.get(node.name)
        if other is not None:
            raise SpecError(
                path,
                f"input name {node.name!r} is also the name of {other}; input names must be "
                "unique across the input tree (they are the directories under "
                "$HEADRACE_INPUT): set a distinct 'name' on one of them",
            )
        seen[node.name] = path


# ---------------------------------------------------------------------------------------------
# Transform

_TRANSFORM_FIELDS = ("python", "pipeline", "cmd", "stdin", "env", "environment")
_TRANSFORM_KINDS = ("python", "pipeline", "cmd")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ENTRY_POINT = re.compile(rf"{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*")
_ENV_NAME = re.compile(_IDENT)


def _parse_transform(data: object, path: str) -> Transform:
    fields = _fields(data, path, _TRANSFORM_FIELDS, "the transform")
    kinds = [k for k in _TRANSFORM_KINDS if k in fields]
    if len(kinds) != 1:
        got = f"; got {' and '.join(kinds)}" if kinds else ""
        raise SpecError(path, f"give exactly one of python, pipeline or cmd{got}")
    kind = kinds[0]
    python = pipeline = None
    cmd: tuple[str, ...] | None = None
    if kind == "cmd":
        cmd = _string_list(
            fields["cmd"], _join(path, "cmd"), "a command as a list such as ['python', 'clean.py']"
        )
    else:
        target = _string(fields[kind], _join(path, kind))
        if not _ENTRY_POINT.fullmatch(target):
            raise SpecError(
                _join(path, kind),
                f"must be 'module:function', such as 'shop.clean:run', got {target!r}",
            )
        python, pipeline = (target, None) if kind == "python" else (None, target)
    stdin: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    for key in ("stdin", "env"):
        if key in fields and kind != "cmd":
            raise SpecError(_join(path, key), f"only applies to a 'cmd' transform, not '{kind}'")
    if "stdin" in fields:
        raw = fields["stdin"]
        stdin = (
            (_string(raw, _join(path, "stdin"), allow_empty=True),)
            if isinstance(raw, str)
            else _string_list(raw, _join(path, "stdin"), "lines of text")
        )
    if "env" in fields:
        env = _env(fields["env"], _join(path, "env"))
    environment = None
    if "environment" in fields:
        environment = _string(fields["environment"], _join(path, "environment"))
    return Transform(python, pipeline, cmd, stdin, env, environment)


def _string_list(value: object, path: str, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise SpecError(
            path, f"must be a non-empty list of strings ({what}), got {_describe(value)}"
        )
    return tuple(_string(v, f"{path}[{i}]", allow_empty=True) for i, v in enumerate(value))


def _env(value: object, path: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise SpecError(
            path, f"must be a mapping of variable names to strings, got {_describe(value)}"
        )
    out: list[tuple[str, str]] = []
    for key, item in value.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise SpecError(path, f"{key!r} is not a valid environment variable name")
        at = _join(path, key)
        if key in _RESERVED_ENV:
            raise SpecError(at, "is set by headrace for each datum; choose another name")
        out.append((key, _string(item, at, allow_empty=True)))
    return tuple(sorted(out))


# ---------------------------------------------------------------------------------------------
# The stage

_STAGE_FIELDS = ("name", "description", "input", "transform", *_STAGE_DEFAULTS)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")


def _parse_stage(data: object) -> StageSpec:
    if data is None:
        raise SpecError("", "the spec is empty; it needs at least name, input and transform")
    fields = _fields(data, "", _STAGE_FIELDS, "a stage spec")
    name = _name(_required(fields, "name", ""), "name", "stage")
    root = _parse_input(_required(fields, "input", ""), "input")
    _check_unique_names(root)
    for path, node in iter_inputs(root):
        if isinstance(node, PfsInput) and node.repo == name:
            raise SpecError(
                f"{path}.repo",
                f"the stage {name!r} writes to the repo {name!r}, so it cannot also read it",
            )
    transform = _parse_transform(_required(fields, "transform", ""), "transform")
    description = _string(fields.get("description", ""), "description", allow_empty=True)
    parallelism = _int(fields.get("parallelism", 1), "parallelism", 1)
    datum_tries = _int(fields.get("datum_tries", 3), "datum_tries", 1)
    datum_timeout = job_timeout = None
    if "datum_timeout" in fields:
        datum_timeout = _parse_duration(fields["datum_timeout"], "datum_timeout")
    if "job_timeout" in fields:
        job_timeout = _parse_duration(fields["job_timeout"], "job_timeout")
    output_branch = _name(fields.get("output_branch", DEFAULT_BRANCH), "output_branch", "branch")
    egress = _parse_egress(fields["egress"], "egress") if "egress" in fields else None
    salt = _string(fields.get("salt", ""), "salt", allow_empty=True)
    reprocess = fields.get("reprocess", "until_success")
    if reprocess not in _REPROCESS:
        raise SpecError("reprocess", f"must be 'until_success' or 'every_job', got {reprocess!r}")
    datum_batching = (
        _bool(fields["datum_batching"], "datum_batching") if "datum_batching" in fields else None
    )
    if datum_batching and transform.kind == "cmd":
        raise SpecError(
            "datum_batching",
            "a 'cmd' transform runs one process per datum; batching needs a python or "
            "pipeline transform",
        )
    return StageSpec(
        name=name,
        input=root,
        transform=transform,
        description=description,
        parallelism=parallelism,
        datum_tries=datum_tries,
        datum_timeout=datum_timeout,
        job_timeout=job_timeout,
        output_branch=output_branch,
        egress=egress,
        salt=salt,
        reprocess=reprocess,
        datum_batching=datum_batching,
    )


_EGRESS_FIELDS = ("sql", "table", "format")
_EGRESS_FORMATS = ("csv", "jsonl")
# SQLite (a file) or PostgreSQL, with the drivers headrace installs.
_SQL_URL = re.compile(r"(?:sqlite(?:\+pysqlite)?:///\S+|postgres(?:ql)?(?:\+psycopg)?://\S+)")
_SQL_SCHEME = re.compile(r"(?:sqlite|postgres|postgresql)(?:\+\w+)?://", re.IGNORECASE)
_SQL_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_SQL_TABLE = re.compile(rf"(?:{_SQL_NAME}\.)?{_SQL_NAME}")


def _parse_egress(value: object, path: str) -> str | SqlEgress:
    """An fsspec URL string, or ``{sql: <SQLAlchemy URL>, table: <name>, format: csv|jsonl}``."""
    if isinstance(value, Mapping):
        fields = _fields(value, path, _EGRESS_FIELDS, "a SQL egress")
        url = _string(_required(fields, "sql", path), _join(path, "sql"))
        if not _SQL_URL.fullmatch(url):
            raise SpecError(
                _join(path, "sql"),
                "must be a SQLAlchemy URL of an SQLite file or a PostgreSQL database, such as "
                "'sqlite:////srv/out.db' or 'postgresql://user@host:5432/db', "
                f"got {hide_password(url)!r}",
            )
        table = _string(_required(fields, "table", path), _join(path, "table"))
        if not _SQL_TABLE.fullmatch(table):
            raise SpecError(
                _join(path, "table"),
                "must be a table name of letters, digits and '_' (not starting with a digit, "
                f"at most 63 characters), optionally 'schema.table', got {table!r}",
            )
        fmt = fields.get("format", "csv")
        if fmt not in _EGRESS_FORMATS:
            raise SpecError(_join(path, "format"), f"must be 'csv' or 'jsonl', got {fmt!r}")
        return SqlEgress(url, table, fmt)
    if not isinstance(value, str):
        raise SpecError(
            path,
            "must be an fsspec URL such as 's3://bucket/dir', or a mapping such as "
            f"{{sql: 'postgresql://user@host/db', table: orders}}, got {_describe(value)}",
        )
    url = _string(value, path)
    if _SQL_SCHEME.match(url):
        raise SpecError(
            path,
            f"must be an fsspec URL; {hide_password(url)!r} is a database: write "
            f"{{sql: {hide_password(url)!r}, table: <name>}} to load the files into a table",
        )
    if not _URL.fullmatch(url):
        raise SpecError(
            path,
            "must be an fsspec URL with a scheme, such as 's3://bucket/dir' or "
            f"'file:///srv/out', got {hide_password(url)!r}",
        )
    return url


# ---------------------------------------------------------------------------------------------
# Back to plain data


def _sql_egress_to_dict(egress: SqlEgress, include_defaults: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"sql": egress.url, "table": egress.table}
    if include_defaults or egress.format != "csv":
        out["format"] = egress.format
    return out


def _input_to_dict(node: Input, include_defaults: bool) -> dict[str, Any]:
    if isinstance(node, PfsInput):
        pfs: dict[str, Any] = {"repo": node.repo}
        if include_defaults or node.branch != DEFAULT_BRANCH:
            pfs["branch"] = node.branch
        pfs["glob"] = node.glob
        if include_defaults or node.name != node.repo:
            pfs["name"] = node.name
        if include_defaults or node.empty_files:
            pfs["empty_files"] = node.empty_files
        if node.join_on is not None:
            pfs["join_on"] = node.join_on
            if include_defaults or node.outer_join:
                pfs["outer_join"] = node.outer_join
        if node.group_by is not None:
            pfs["group_by"] = node.group_by
        return {"pfs": pfs}
    if isinstance(node, CronInput):
        cron: dict[str, Any] = {"name": node.name, "spec": node.spec}
        if include_defaults or node.overwrite:
            cron["overwrite"] = node.overwrite
        return {"cron": cron}
    return {_KIND_OF[type(node)]: [_input_to_dict(c, include_defaults) for c in node.inputs]}


def _transform_to_dict(transform: Transform, include_defaults: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if transform.python is not None:
        out["python"] = transform.python
    elif transform.pipeline is not None:
        out["pipeline"] = transform.pipeline
    else:
        out["cmd"] = list(transform.cmd or ())
        if transform.stdin or include_defaults:
            out["stdin"] = list(transform.stdin)
        if transform.env or include_defaults:
            out["env"] = dict(transform.env)
    if transform.environment is not None:
        out["environment"] = transform.environment
    return out
