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

Inputs nest as in Pachyderm: ``cross`` and ``union`` hold any inputs, ``join`` holds ``pfs``
inputs and ``group`` holds ``pfs`` inputs or ``join`` inputs (each pfs input with ``join_on`` /
``group_by``, a template over the glob's ``(...)`` capture groups such as ``"$1"``; a pfs input
of a join inside a group has both), ``cron`` is a leaf ticking on a schedule
(:func:`expand_cron` gives its value sets). ``egress`` is an fsspec URL, or
``{sql: <SQLAlchemy URL>, table: <name>, format: csv|jsonl}`` (a :class:`SqlEgress`).

:func:`load_spec` reads a file, a text or an already parsed mapping. Every problem raises
:class:`SpecError` whose message starts with the field path, e.g.
``input.cross[1].pfs.glob: must start with '/'``. Defaults are filled in, durations become
seconds and ``name`` of a pfs input defaults to its repo, so two specs that mean the same
compare equal and have the same :attr:`StageSpec.version`: a hash of what decides a datum's
output (input tree, transform, salt), which datum hashes build on.

Single-field checks live in :mod:`headrace.stages.specfields`, cron schedules in
:mod:`headrace.stages.cronspec` and the ``egress`` field in :mod:`headrace.stages.egressspec`;
their public names are importable from here as well.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeAlias

import yaml

from headrace.stages.cronspec import CronFields, check_cron_spec, expand_cron
from headrace.stages.egressspec import (
    SqlEgress,
    hide_password,
    parse_egress,
    sql_egress_to_dict,
)
from headrace.stages.pachspec import from_pachyderm, is_pachyderm_spec
from headrace.stages.resourcespec import (
    Resources,
    check_requests_within_limits,
    parse_resources,
    resources_to_dict,
)
from headrace.stages.specfields import (
    SpecError,
    check_bool,
    check_capture_template,
    check_fields,
    check_glob,
    check_int,
    check_name,
    check_string,
    describe,
    field_path,
    parse_duration,
    plain_number,
    required,
    split_capture_groups,
)
from headrace.store.refs import DEFAULT_BRANCH

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
    lazy: bool = False  # Pachyderm's streamed inputs: accepted, results are the same

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
    """All files of the pfs inputs with equal ``group_by`` values, one datum per value. A join
    among the inputs contributes the matches of its datums, each under its own ``group_by``
    value (Pachyderm's group of a join)."""

    inputs: tuple[PfsInput | JoinInput, ...]


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
            return parse_duration(self.spec[len("@every ") :], "")
        return None


Input: TypeAlias = PfsInput | CrossInput | UnionInput | JoinInput | GroupInput | CronInput


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
    image: str | None = None  # cmd only: run in this container image
    pfs: bool = False  # cmd only: the datum under /pfs/<input>, the output at /pfs/out
    # python only: pip requirement lines for an environment built for the stage
    # (headrace.stages.environments; a Ray runtime_env on Ray)
    requirements: tuple[str, ...] = ()

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
    PfsInput(repo='orders', glob='/*.csv', branch='master', name='orders', empty_files=False, join_on=None, outer_join=False, group_by=None, lazy=False)
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
    # Pachyderm's ResourceSpec fields; placement on Ray (see headrace.stages.resourcespec).
    resource_requests: Resources | None = None
    resource_limits: Resources | None = None

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
            "resource_requests",
            "resource_limits",
        ):
            value = getattr(self, key)
            if isinstance(value, Resources):
                out[key] = resources_to_dict(value)
            elif isinstance(value, SqlEgress):
                out[key] = sql_egress_to_dict(value, include_defaults)
            elif include_defaults or value != _STAGE_DEFAULTS[key]:
                out[key] = plain_number(value)
        return out

    @cached_property
    def version(self) -> str:
        """A stable hash (32 hex digits) of what decides outputs: input tree, transform, salt.

        Changing the description, parallelism, retries, timeouts, egress, output branch,
        reprocess policy, batching or resources leaves it unchanged; so does spelling a default out.
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
    "resource_requests": None,
    "resource_limits": None,
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


def load_spec(
    source: str | os.PathLike[str] | Mapping[str, Any],
    warn: Callable[[str], None] | None = None,
) -> StageSpec:
    """Load a stage spec from a file path, a YAML or JSON text, or a parsed mapping.

    A Pachyderm pipeline spec (with ``pipeline: {name: ...}``) is accepted too and translated
    field by field (:mod:`headrace.stages.pachspec`); ``warn`` receives a message for each of
    its fields that has no meaning here.

    A ``str`` is read as a file if it is one line naming an existing file or ending in
    ``.yaml``, ``.yml`` or ``.json``; otherwise it is the spec's text.

    >>> load_spec('{"name": "s", "input": {"pfs": {"repo": "r", "glob": "*.{csv"}}, '
    ...           '"transform": {"cmd": ["true"]}}')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    headrace.stages.spec.SpecError: input.pfs.glob: invalid glob '*.{csv': '{' alternatives ...
    """
    named: str | None = None
    try:
        if isinstance(source, Mapping):
            return StageSpec.from_dict(_native(source, warn, None, None))
        if isinstance(source, os.PathLike) or _looks_like_file(source):
            path = Path(source)
            named = str(path)
            text = path.read_text(encoding="utf-8")
            folder = str(path.resolve().parent)
            data = _native(_parse_text(text, named), warn, folder, named)
            return StageSpec.from_dict(data, source=named)
        return StageSpec.from_dict(_native(_parse_text(source, None), warn, None, None))
    except RecursionError:  # a spec nested past what any reader here can walk
        raise SpecError("", _TOO_DEEP, named) from None


def _native(
    data: Any, warn: Callable[[str], None] | None, folder: str | None, source: str | None
) -> Any:
    """``data`` as a headrace spec: a Pachyderm pipeline spec is translated
    (:mod:`headrace.stages.pachspec`), its warnings given to ``warn``."""
    if not is_pachyderm_spec(data):
        return data
    try:
        return from_pachyderm(data, warn or (lambda _: None), folder)
    except SpecError as err:
        raise SpecError(err.path, err.problem, source) from None


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
        except RecursionError:
            raise SpecError("", _TOO_DEEP, source) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as err:
        raise SpecError("", f"not valid YAML: {err}", source) from None
    except RecursionError:
        raise SpecError("", _TOO_DEEP, source) from None


MAX_INPUT_DEPTH = 64
"""How deep inputs may nest (cross in union in ...); real specs use a handful of levels."""
_TOO_DEEP = (
    "nests too deeply to read (hundreds of levels); inputs may nest at most "
    f"{MAX_INPUT_DEPTH} levels: flatten the cross/union inputs"
)


# ---------------------------------------------------------------------------------------------
# Inputs

_INPUT_KINDS = ("pfs", "cross", "union", "join", "group", "cron")
_PFS_FIELDS = (
    "repo", "branch", "glob", "name", "empty_files", "join_on", "outer_join", "group_by", "lazy",
)  # fmt: skip
_CRON_FIELDS = ("name", "spec", "overwrite")
_Context = Literal["top", "join", "group", "group-join"]


def _parse_input(data: object, path: str, context: _Context = "top", depth: int = 0) -> Input:
    if depth >= MAX_INPUT_DEPTH:
        raise SpecError(
            path,
            f"inputs nest more than {MAX_INPUT_DEPTH} levels deep; flatten the cross/union inputs",
        )
    fields = check_fields(data, path, _INPUT_KINDS, "an input")
    kinds = [k for k in _INPUT_KINDS if k in fields]
    if not kinds:
        raise SpecError(path, f"give one of {', '.join(_INPUT_KINDS)}")
    if len(kinds) > 1:
        raise SpecError(path, f"give exactly one of {', '.join(_INPUT_KINDS)}; got {kinds}")
    kind = kinds[0]
    at = field_path(path, kind)
    value = fields[kind]
    if context == "group" and kind not in ("pfs", "join"):
        raise SpecError(at, "a group combines pfs and join inputs only; use one of them here")
    if context in ("join", "group-join") and kind != "pfs":
        raise SpecError(at, "a join combines pfs inputs only; use a pfs input here")
    if kind == "pfs":
        return _parse_pfs(value, at, context)
    if kind == "cron":
        return _parse_cron(value, at)
    if not isinstance(value, list):
        raise SpecError(at, f"must be a list of inputs, got {describe(value)}")
    minimum = 2 if kind == "join" else 1
    if len(value) < minimum:
        raise SpecError(at, f"needs at least {minimum} input{'s' if minimum > 1 else ''}")
    if kind == "join":
        ctx: _Context = "group-join" if context == "group" else "join"
        parsed = [_parse_input(v, f"{at}[{i}]", ctx, depth + 1) for i, v in enumerate(value)]
        return JoinInput(tuple(p for p in parsed if isinstance(p, PfsInput)))
    if kind == "group":
        parsed = [_parse_input(v, f"{at}[{i}]", "group", depth + 1) for i, v in enumerate(value)]
        return GroupInput(tuple(p for p in parsed if isinstance(p, PfsInput | JoinInput)))
    children = tuple(_parse_input(v, f"{at}[{i}]", "top", depth + 1) for i, v in enumerate(value))
    return CrossInput(children) if kind == "cross" else UnionInput(children)


def _parse_pfs(data: object, path: str, context: _Context) -> PfsInput:
    fields = check_fields(data, path, _PFS_FIELDS, "a pfs input")
    repo = check_name(required(fields, "repo", path), field_path(path, "repo"), "repo")
    glob, groups = check_glob(required(fields, "glob", path), field_path(path, "glob"))
    branch = check_name(fields.get("branch", DEFAULT_BRANCH), field_path(path, "branch"), "branch")
    name = check_name(fields.get("name", repo), field_path(path, "name"), "input")
    empty_files = check_bool(fields.get("empty_files", False), field_path(path, "empty_files"))
    for key, needed in (("join_on", "join"), ("outer_join", "join"), ("group_by", "group")):
        if key in fields and needed not in context.split("-"):
            raise SpecError(
                field_path(path, key), f"only applies to a pfs input inside a '{needed}'"
            )
    join_on = group_by = None
    if context in ("join", "group-join"):
        raw = required(fields, "join_on", path)
        join_on = check_capture_template(raw, field_path(path, "join_on"), glob, groups)
    if context in ("group", "group-join"):
        raw = required(fields, "group_by", path)
        group_by = check_capture_template(raw, field_path(path, "group_by"), glob, groups)
    outer_join = check_bool(fields.get("outer_join", False), field_path(path, "outer_join"))
    # lazy: Pachyderm streams such inputs instead of downloading them first; headrace lays a
    # datum's files out before the code runs either way, so the results are the same
    lazy = check_bool(fields.get("lazy", False), field_path(path, "lazy"))
    return PfsInput(repo, glob, branch, name, empty_files, join_on, outer_join, group_by, lazy)


def _parse_cron(data: object, path: str) -> CronInput:
    fields = check_fields(data, path, _CRON_FIELDS, "a cron input")
    name = check_name(required(fields, "name", path), field_path(path, "name"), "input")
    spec = check_cron_spec(required(fields, "spec", path), field_path(path, "spec"))
    overwrite = check_bool(fields.get("overwrite", False), field_path(path, "overwrite"))
    return CronInput(name, spec, overwrite)


def _check_unique_names(root: Input) -> None:
    """Input names are unique, except among the inputs of a union (Pachyderm's validateNames
    in src/server/pps/server/api_server.go): a datum comes from one of them, so they may share
    a name, and the code reads one folder whichever input a datum came from; inputs beside the
    union still may not use any of its names."""

    def visit(node: Input, path: str, names: dict[str, str]) -> None:
        if isinstance(node, PfsInput | CronInput):
            at = f"{path}.{'pfs' if isinstance(node, PfsInput) else 'cron'}"
            other = names.get(node.name)
            if other is not None:
                raise SpecError(
                    at,
                    f"input name {node.name!r} is also the name of {other}; input names must "
                    "be unique across the input tree except among the inputs of one union "
                    "(they are the directories under $HEADRACE_INPUT): set a distinct 'name' "
                    "on one of them",
                )
            names[node.name] = at
            return
        kind = _KIND_OF[type(node)]
        if not isinstance(node, UnionInput):
            for i, child in enumerate(node.inputs):
                visit(child, f"{path}.{kind}[{i}]", names)
            return
        seen: dict[str, str] = {}
        for i, child in enumerate(node.inputs):
            own = dict(names)
            visit(child, f"{path}.{kind}[{i}]", own)
            seen.update({k: v for k, v in own.items() if k not in seen})
        names.update(seen)

    visit(root, "input", {})


# ---------------------------------------------------------------------------------------------
# Transform

_TRANSFORM_FIELDS = (
    "python",
    "pipeline",
    "cmd",
    "stdin",
    "env",
    "environment",
    "requirements",
    "image",
    "pfs",
)
_TRANSFORM_KINDS = ("python", "pipeline", "cmd")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ENTRY_POINT = re.compile(rf"{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*")
_ENV_NAME = re.compile(_IDENT)


def _parse_transform(data: object, path: str) -> Transform:
    fields = check_fields(data, path, _TRANSFORM_FIELDS, "the transform")
    kinds = [k for k in _TRANSFORM_KINDS if k in fields]
    if len(kinds) != 1:
        got = f"; got {' and '.join(kinds)}" if kinds else ""
        raise SpecError(path, f"give exactly one of python, pipeline or cmd{got}")
    kind = kinds[0]
    python = pipeline = None
    cmd: tuple[str, ...] | None = None
    if kind == "cmd":
        cmd = _string_list(
            fields["cmd"],
            field_path(path, "cmd"),
            "a command as a list such as ['python', 'clean.py']",
        )
    else:
        target = check_string(fields[kind], field_path(path, kind))
        if not _ENTRY_POINT.fullmatch(target):
            raise SpecError(
                field_path(path, kind),
                f"must be 'module:function', such as 'shop.clean:run', got {target!r}",
            )
        python, pipeline = (target, None) if kind == "python" else (None, target)
    stdin: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    for key in ("stdin", "env", "image", "pfs"):
        if key in fields and kind != "cmd":
            raise SpecError(
                field_path(path, key), f"only applies to a 'cmd' transform, not '{kind}'"
            )
    if "stdin" in fields:
        raw = fields["stdin"]
        stdin = (
            (check_string(raw, field_path(path, "stdin"), allow_empty=True),)
            if isinstance(raw, str)
            else _string_list(raw, field_path(path, "stdin"), "lines of text")
        )
    if "env" in fields:
        env = _env(fields["env"], field_path(path, "env"))
    environment = None
    if "environment" in fields:
        environment = check_string(fields["environment"], field_path(path, "environment"))
    image = None
    if "image" in fields:
        image = check_string(fields["image"], field_path(path, "image"))
    pfs = check_bool(fields.get("pfs", False), field_path(path, "pfs"))
    requirements: tuple[str, ...] = ()
    if "requirements" in fields:
        where = field_path(path, "requirements")
        if kind != "python":
            raise SpecError(
                where,
                f"only applies to a 'python' transform, not '{kind}' (a pipeline runs on "
                "headrace's own interpreter; a cmd brings its own environment or image)",
            )
        if environment is not None:
            raise SpecError(
                where, "give either environment (an existing interpreter) or requirements"
            )
        requirements = _string_list(fields["requirements"], where, "pip requirement lines")
    return Transform(python, pipeline, cmd, stdin, env, environment, image, pfs, requirements)


def _string_list(value: object, path: str, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise SpecError(
            path, f"must be a non-empty list of strings ({what}), got {describe(value)}"
        )
    return tuple(check_string(v, f"{path}[{i}]", allow_empty=True) for i, v in enumerate(value))


def _env(value: object, path: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise SpecError(
            path, f"must be a mapping of variable names to strings, got {describe(value)}"
        )
    out: list[tuple[str, str]] = []
    for key, item in value.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise SpecError(path, f"{key!r} is not a valid environment variable name")
        at = field_path(path, key)
        if key in _RESERVED_ENV:
            raise SpecError(at, "is set by headrace for each datum; choose another name")
        out.append((key, check_string(item, at, allow_empty=True)))
    return tuple(sorted(out))


# ---------------------------------------------------------------------------------------------
# The stage

_STAGE_FIELDS = ("name", "description", "input", "transform", *_STAGE_DEFAULTS)


def _parse_stage(data: object) -> StageSpec:
    if data is None:
        raise SpecError("", "the spec is empty; it needs at least name, input and transform")
    fields = check_fields(data, "", _STAGE_FIELDS, "a stage spec")
    name = check_name(required(fields, "name", ""), "name", "stage")
    root = _parse_input(required(fields, "input", ""), "input")
    _check_unique_names(root)
    for path, node in iter_inputs(root):
        if isinstance(node, PfsInput) and node.repo == name:
            raise SpecError(
                f"{path}.repo",
                f"the stage {name!r} writes to the repo {name!r}, so it cannot also read it",
            )
    transform = _parse_transform(required(fields, "transform", ""), "transform")
    description = check_string(fields.get("description", ""), "description", allow_empty=True)
    parallelism = check_int(fields.get("parallelism", 1), "parallelism", 1)
    datum_tries = check_int(fields.get("datum_tries", 3), "datum_tries", 1)
    datum_timeout = job_timeout = None
    if "datum_timeout" in fields:
        datum_timeout = parse_duration(fields["datum_timeout"], "datum_timeout")
    if "job_timeout" in fields:
        job_timeout = parse_duration(fields["job_timeout"], "job_timeout")
    output_branch = check_name(
        fields.get("output_branch", DEFAULT_BRANCH), "output_branch", "branch"
    )
    egress = parse_egress(fields["egress"], "egress") if "egress" in fields else None
    salt = check_string(fields.get("salt", ""), "salt", allow_empty=True)
    reprocess = fields.get("reprocess", "until_success")
    if reprocess not in _REPROCESS:
        raise SpecError("reprocess", f"must be 'until_success' or 'every_job', got {reprocess!r}")
    datum_batching = (
        check_bool(fields["datum_batching"], "datum_batching")
        if "datum_batching" in fields
        else None
    )
    if datum_batching and transform.kind == "cmd":
        raise SpecError(
            "datum_batching",
            "a 'cmd' transform runs one process per datum; batching needs a python or "
            "pipeline transform",
        )
    requests = limits = None
    if "resource_requests" in fields:
        requests = parse_resources(fields["resource_requests"], "resource_requests")
    if "resource_limits" in fields:
        limits = parse_resources(fields["resource_limits"], "resource_limits")
    check_requests_within_limits(requests, limits)
    return StageSpec(
        name=name,
        input=root,
        transform=transform,
        description=description,
        resource_requests=requests,
        resource_limits=limits,
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


# ---------------------------------------------------------------------------------------------
# Back to plain data


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
        if include_defaults or node.lazy:
            pfs["lazy"] = node.lazy
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
    if transform.requirements:
        out["requirements"] = list(transform.requirements)
    if transform.image is not None:
        out["image"] = transform.image
    if transform.pfs:
        out["pfs"] = True
    return out
