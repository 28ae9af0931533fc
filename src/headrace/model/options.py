"""Pipeline options: Beam-compatible ``PipelineOptions`` and the built-in option views.

Options come from command-line style flags and from keyword arguments (keywords win). Every
subclass of :class:`PipelineOptions` declares its options in an ``_add_argparse_args(cls, parser)``
classmethod, exactly as in Beam. Flags are parsed with the options of *all* subclasses, found
through ``__subclasses__`` each time parsing happens, so a subclass defined after an options object
was built is still honoured by ``view_as``. Flags that no subclass declares are kept (they are often
the user script's own ``sys.argv``) and ignored, except by
``get_all_options(retain_unknown_options=True)``. As Beam's ``get_all_options`` does, the plain
``get_all_options()`` (which runners call when a run starts) logs a warning on the
``headrace.model.options`` logger for each unknown ``--option`` it discards, naming the closest
declared option when there is one (``--direct_num_worker=2``: did you mean
``--direct_num_workers``?); each unknown flag of an options object is reported once.

State: every view of one options object shares a single :class:`_OptionsState` holding

* ``flags`` - the flags given at construction (kept for re-parsing when new subclasses appear),
* ``values`` - the value of every option parsed so far, plus unknown keyword options,
* ``explicit`` - names set by keyword or attribute assignment; re-parsing never overwrites them.

``PipelineOptions.__init__`` fills the state, ``view_as`` and attribute lookups of options not yet
seen re-parse and add missing values, and ``__setattr__`` changes a value for all views.

Option values are validated: a bad flag or keyword raises :class:`PipelineOptionsError` (a
:class:`ValueError`) naming the option, the value and, for a choice, the accepted values. If two
subclasses declare the same flag (common when a test module defines the same options class
twice) this is not an error: the declaration met last while walking the subclasses
depth-first is used, so give distinct options distinct names. ``required=True`` is checked only
when a view of the declaring class is made, so it cannot break unrelated options objects.

Example:

>>> class WordCountDocOptions(PipelineOptions):
...     @classmethod
...     def _add_argparse_args(cls, parser):
...         parser.add_argument("--wc_input", default="in.txt")
...         parser.add_value_provider_argument("--wc_min_count", type=int, default=1)
>>> opts = PipelineOptions(
...     ["--wc_input=words.txt", "--direct_num_workers=4", "--not_an_option=1"], streaming=True
... )
>>> wc = opts.view_as(WordCountDocOptions)
>>> wc.wc_input, wc.wc_min_count
('words.txt', 1)
>>> opts.view_as(DirectOptions).direct_num_workers
4
>>> opts.view_as(StandardOptions).streaming
True
>>> wc.wc_min_count = 3
>>> opts.view_as(WordCountDocOptions)
WordCountDocOptions(wc_input='words.txt', wc_min_count=3)
>>> PipelineOptions(direct_num_workers=0)
Traceback (most recent call last):
...
headrace.model.options.PipelineOptionsError: Invalid value ... 'direct_num_workers': ... got 0
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import logging
import operator
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NoReturn, TypeVar

__all__ = [
    "DebugOptions",
    "DirectOptions",
    "GoogleCloudOptions",
    "PipelineOptions",
    "PipelineOptionsError",
    "RayOptions",
    "ServiceOptions",
    "SetupOptions",
    "StandardOptions",
    "StreamingOptions",
    "TypeOptions",
]

_ViewT = TypeVar("_ViewT", bound="PipelineOptions")

_LOGGER = logging.getLogger(__name__)


class PipelineOptionsError(ValueError):
    """A pipeline option has a value it cannot take, or names something that does not exist.

    The message is one line naming the option (and, where there is a fixed set, the accepted
    values); ``headrace run`` prints it as a usage error (exit status 2). ``option`` is the
    option's name without dashes.
    """

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class _OptionsArgumentParser(argparse.ArgumentParser):
    """The parser handed to ``_add_argparse_args``: raises ValueError instead of exiting."""

    def __init__(self) -> None:
        super().__init__(add_help=False, allow_abbrev=False, conflict_handler="resolve")
        self.required_options: set[str] = set()

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        # "required" is enforced per view (see PipelineOptions.view_as), not during the parse
        # over every subclass, so one subclass's required option cannot break all the others.
        required = kwargs.pop("required", False)
        action = super().add_argument(*args, **kwargs)
        if required:
            self.required_options.add(action.dest)
        return action

    def add_value_provider_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """Beam's runtime-value-provider flag; here an ordinary option with a plain value."""
        return self.add_argument(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # argparse's messages read "argument --name: what is wrong"
        prefix, sep, rest = message.partition(": ")
        if sep and prefix.startswith("argument --"):
            flag = prefix.removeprefix("argument ").split("/")[0]
            raise PipelineOptionsError(f"Invalid pipeline option {flag}: {rest}", flag.lstrip("-"))
        raise PipelineOptionsError(f"Invalid pipeline option flag: {message}")


class _OptionsState:
    """The values shared by every view of one options object (see the module docstring)."""

    __slots__ = ("explicit", "flags", "values", "warned")

    def __init__(self, flags: tuple[str, ...]) -> None:
        self.flags = flags
        self.values: dict[str, Any] = {}
        self.explicit: set[str] = set()
        self.warned: set[str] = set()  # unknown flags already reported (not pickled)

    def __getstate__(self) -> tuple[tuple[str, ...], dict[str, Any], set[str]]:
        return self.flags, self.values, self.explicit

    def __setstate__(self, state: tuple[tuple[str, ...], dict[str, Any], set[str]]) -> None:
        self.flags, self.values, self.explicit = state
        self.warned = set()


def _option_classes(root: type[PipelineOptions]) -> Iterator[type[PipelineOptions]]:
    """``root`` and all its subclasses (recursively, in definition order, each once)."""
    seen: set[type] = set()
    stack = [root]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        yield cls
        stack.extend(reversed(cls.__subclasses__()))


def _build_parser(classes: Iterable[type[PipelineOptions]]) -> _OptionsArgumentParser:
    parser = _OptionsArgumentParser()
    for cls in classes:
        if "_add_argparse_args" in cls.__dict__:
            cls._add_argparse_args(parser)
    return parser


def _view_classes(cls: type[PipelineOptions]) -> list[type[PipelineOptions]]:
    """The classes whose options a view of ``cls`` shows: its option-declaring bases and itself."""
    return [c for c in reversed(cls.__mro__) if issubclass(c, PipelineOptions)]


# view class -> (its option names, its required option names); a class's options never change.
_VIEW_OPTIONS: weakref.WeakKeyDictionary[type, tuple[tuple[str, ...], frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)


def _view_options(cls: type[PipelineOptions]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The option names a view of ``cls`` shows, and which of them are required."""
    cached = _VIEW_OPTIONS.get(cls)
    if cached is None:
        parser = _build_parser(_view_classes(cls))
        names = tuple(a.dest for a in parser._actions)
        cached = _VIEW_OPTIONS[cls] = (names, frozenset(parser.required_options))
    return cached


def _actions_by_dest(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions}


def _validate(action: argparse.Action, value: Any) -> Any:
    """Check (and for strings, convert) a keyword or assigned value the way a flag would be."""
    name = action.dest
    if value is None:
        return None
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        if not isinstance(value, bool):
            raise PipelineOptionsError(
                f"Invalid value for pipeline option {name!r}: expected True or False, "
                f"got {value!r}",
                name,
            )
        return value
    if isinstance(action, argparse._AppendAction):
        items = [value] if isinstance(value, str) else list(value)
        return [_convert(action, item) for item in items]
    return _convert(action, value)


def _convert(action: argparse.Action, value: Any) -> Any:
    converter = action.type
    if callable(converter) and (isinstance(value, str) or isinstance(converter, _Checked)):
        try:
            value = converter(value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            detail = str(exc) or f"cannot convert {value!r}"
            raise PipelineOptionsError(
                f"Invalid value for pipeline option {action.dest!r}: {detail}", action.dest
            ) from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(repr(c) for c in action.choices)
        raise PipelineOptionsError(
            f"Invalid value for pipeline option {action.dest!r}: {value!r} is not one of {choices}",
            action.dest,
        )
    return value


class _Checked:
    """An option type that validates already-typed keyword values as well as flag strings."""

    def __init__(self, name: str, check: Callable[[Any], Any]) -> None:
        self.__name__ = name  # argparse uses it in "invalid <name> value" messages
        self._check = check

    def __call__(self, value: Any) -> Any:
        return self._check(value)


def _at_least_one(value: Any) -> int:
    """Integer >= 1, from a flag string or an int keyword value."""
    number: int | None = None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = int(value)
    elif not isinstance(value, bool):
        with contextlib.suppress(TypeError):
            number = operator.index(value)
    if number is None or number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value!r}")
    return number


_positive_int = _Checked("positive integer", _at_least_one)


def _looks_like_option(arg: str) -> bool:
    """``--name`` or ``-x`` (but not a negative number such as ``-3``)."""
    return arg.startswith("-") and not arg[1:2].isdigit() and arg != "-"


class PipelineOptions:
    """Options for a pipeline run, from flags (``--name=value``) and keyword arguments.

    ``flags`` are parsed with the ``_add_argparse_args`` of this class and every subclass; flags no
    subclass declares are kept and ignored. As in Beam, ``flags=None`` means ``sys.argv[1:]``;
    pass ``[]`` for no flags. Keyword arguments override flags; keyword options that
    no subclass declares are kept and readable as attributes. All views made with :meth:`view_as`
    share the same values.
    """

    def __init__(self, flags: Sequence[str] | None = None, **kwargs: Any) -> None:
        if isinstance(flags, str):
            raise TypeError(
                "PipelineOptions flags must be a list of strings such as ['--runner=DirectRunner'],"
                f" got the string {flags!r}"
            )
        if flags is None:
            flags = sys.argv[1:]
        state = _OptionsState(tuple(flags))
        object.__setattr__(self, "_state", state)
        state.values.update(kwargs)
        state.explicit.update(kwargs)
        self._parse()
        self._check_required()

    @classmethod
    def _add_argparse_args(cls, parser: _OptionsArgumentParser) -> None:
        """Subclasses add their options here with ``parser.add_argument`` (Beam's hook)."""

    @classmethod
    def from_dictionary(cls: type[_ViewT], options: dict[str, Any]) -> _ViewT:
        """Build options from a ``{name: value}`` dict, as returned by :meth:`get_all_options`."""
        return cls([], **options)

    # -- parsing -----------------------------------------------------------------------------

    def _parse(self, parser: _OptionsArgumentParser | None = None) -> _OptionsArgumentParser:
        """Parse the flags with every current subclass; add values not yet known."""
        if parser is None:
            parser = _build_parser(_option_classes(PipelineOptions))
        state = self._state
        parsed, _unknown = parser.parse_known_args(state.flags)
        for name, value in vars(parsed).items():
            if name not in state.explicit:
                state.values[name] = value
        actions = _actions_by_dest(parser)
        for name in state.explicit:
            action = actions.get(name)
            if action is not None:  # keyword or assigned value of a declared option
                state.values[name] = _validate(action, state.values[name])
        return parser

    def _check_required(self) -> None:
        _names, required = _view_options(type(self))
        missing = sorted(name for name in required if self._state.values.get(name) is None)
        if missing:
            names = ", ".join(f"--{name}" for name in missing)
            raise ValueError(
                f"{type(self).__name__} requires option(s) {names}; pass them as flags or keywords"
            )

    def _unknown_flag_values(self, parser: argparse.ArgumentParser) -> dict[str, Any]:
        """Unknown ``--name=value`` / ``--name value`` / ``--flag`` flags as a dict."""
        _parsed, unknown = parser.parse_known_args(self._state.flags)
        result: dict[str, Any] = {}
        i = 0
        while i < len(unknown):
            arg = unknown[i]
            i += 1
            if not arg.startswith("--") or len(arg) == 2:
                continue  # positional arguments and "--" are not options
            name, sep, text = arg[2:].partition("=")
            if sep:
                result[name] = text
            elif i < len(unknown) and not _looks_like_option(unknown[i]):
                result[name] = unknown[i]
                i += 1
            else:
                result[name] = True
        return result

    def _warn_unknown_flags(self, parser: argparse.ArgumentParser) -> None:
        """Log one warning per unknown ``--flag`` not reported yet (Beam: "Discarding
        unparseable args"), with the closest declared option as a suggestion."""
        unknown = self._unknown_flag_values(parser)
        warned = self._state.warned
        if not unknown or unknown.keys() <= warned:
            return
        known = sorted(
            option[2:]
            for action in parser._actions
            for option in action.option_strings
            if option.startswith("--")
        )
        for name, value in unknown.items():
            if name in warned:
                continue
            warned.add(name)
            shown = f"--{name}" if value is True else f"--{name}={value}"
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            hint = f"; did you mean --{close[0]}?" if close else ""
            _LOGGER.warning(
                "Discarding unknown pipeline option %s: no PipelineOptions class declares it%s",
                shown,
                hint,
            )

    # -- public API --------------------------------------------------------------------------

    def view_as(self, cls: type[_ViewT]) -> _ViewT:
        """Return ``cls`` viewing the same values: assignments through any view are shared."""
        if not (isinstance(cls, type) and issubclass(cls, PipelineOptions)):
            raise TypeError(f"view_as needs a PipelineOptions subclass, got {cls!r}")
        view = cls.__new__(cls)
        object.__setattr__(view, "_state", self._state)
        names, _required = _view_options(cls)
        if any(name not in self._state.values for name in names):
            self._parse()
        view._check_required()
        return view

    def get_all_options(
        self, drop_default: bool = False, retain_unknown_options: bool = False
    ) -> dict[str, Any]:
        """All declared options and their values.

        ``drop_default`` leaves out options still at their declared default.
        ``retain_unknown_options`` also includes unknown keyword options and unknown flags (as
        strings, or ``True`` for a flag without a value).
        """
        parser = self._parse()
        values = self._state.values
        declared = _actions_by_dest(parser)
        if not retain_unknown_options:
            self._warn_unknown_flags(parser)
        result: dict[str, Any] = {}
        for name in declared:
            if name not in values:
                continue
            if drop_default and values[name] == parser.get_default(name):
                continue
            result[name] = values[name]
        if retain_unknown_options:
            for name, value in self._unknown_flag_values(parser).items():
                result.setdefault(name, value)
            result.update((k, v) for k, v in values.items() if k not in declared)
        return result

    def display_data(self) -> dict[str, Any]:
        """The options that differ from their defaults, including unknown ones (for UIs/logs)."""
        return self.get_all_options(drop_default=True, retain_unknown_options=True)

    # -- attribute access --------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails. Dunder and private names are never options
        # (and may be looked up before ``_state`` exists, e.g. while unpickling).
        if name.startswith("_"):
            raise AttributeError(name)
        values = self._state.values
        if name not in values:
            self._parse()
        try:
            return values[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no option {name!r}; declare it in a PipelineOptions "
                "subclass's _add_argparse_args or pass it as a keyword argument"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or hasattr(type(self), name):
            object.__setattr__(self, name, value)
            return
        state = self._state
        parser = _build_parser(_option_classes(PipelineOptions))
        action = _actions_by_dest(parser).get(name)
        if action is not None:
            value = _validate(action, value)
        elif name not in state.values:
            raise AttributeError(
                f"Cannot set unknown pipeline option {name!r} on {type(self).__name__}; declare "
                "it in a PipelineOptions subclass's _add_argparse_args or pass it as a keyword"
            )
        state.values[name] = value
        state.explicit.add(name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._state.values))

    def __getstate__(self) -> dict[str, Any]:
        return {"_state": self._state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "_state", state["_state"])

    def __repr__(self) -> str:
        cls = type(self)
        if cls is PipelineOptions:
            shown = self.display_data()
        else:
            names, _required = _view_options(cls)
            shown = {name: self._state.values.get(name) for name in names}
        body = ", ".join(f"{name}={value!r}" for name, value in sorted(shown.items()))
        return f"{cls.__name__}({body})"


class StandardOptions(PipelineOptions):
    """Which runner to use and whether the pipeline is streaming."""

    runner: str | None
    streaming: bool

    DEFAULT_RUNNER = "DirectRunner"

    @classmethod
    def _add_argparse_args(cls, parser: _OptionsArgumentParser) -> None:
        parser.add_argument(
            "--runner",
            default=None,
            help=(
                "The runner: DirectRunner (the default; Beam's BundleBasedDirectRunner, "
                "FnApiRunner, PrismRunner and SwitchingDirectRunner names select it too) or "
                "RayRunner (batch pipelines on a Ray cluster; pip install 'headrace[ray]')."
            ),
        )
        parser.add_argument(
            "--streaming",
            action="store_true",
            default=False,
            help="Run as a streaming pipeline (unbounded sources, watermarks, triggers).",
        )


class ServiceOptions(PipelineOptions):
    """Reporting runs to a headrace job service (headrace's own; Beam has no such option)."""

    service: str | None

    @classmethod
    def _add_argparse_args(cls, parser: _OptionsArgumentParser) -> None:
        parser.add_argument(
            "--service",
            default=None,
            help=(
                "Report this pipeline's runs to the job service at this URL (as 'headrace run "
                "--service' does): states, step counts and logs show there and it can cancel "
                "them; $HEADRACE_SERVICE does the same; the token is $HEADRACE_TOKEN."
            ),
        )


class StreamingOptions(PipelineOptions):
    """Beam's streaming-update options; accepted so Beam programs parse (headrace has no
    pipeline update, so they change nothing)."""

    update_compatibility_version: str | None

    @classmethod
    def _add_argparse_args(cls, parser: _OptionsArgumentParser) -> None:
        parser.add_argument(
            "--update_compatibility_version",
            default=None,
            help="Beam's update-compatibility version (accepted, no effect on headrace).",
        )


class GoogleCloudOptions(PipelineOptions):
    """Beam's Google Cloud options: parsed so Beam programs (the mobile-gaming examples) read
    ``options.view_as(GoogleCloudOptions).project``; headrace itself uses none of them."""

    project: str | None
    job_name: str | None
    staging_location: str | None
    temp_location: str | None
    region: str | None
    service_account_email: str | None

    @classmethod
    def _add_argparse_args(cls, parser: _OptionsArgumentParser) -> None:
        for name in (
            "project",
            "job_name",
            "staging_location",
            "temp_location",
            "region",
            "service_account_email",
        ):
            parser.add_argument(
                f"--{name}", default=None, help=f"Beam's Google Cloud {name} (not used)."
            )


class DirectOptions(PipelineOptions):
    """Settings of the in-process direct runner."""

    direct_num_workers: int
    direct_running_mode: str
    direct_memory_budget_mb: int
    direct_bundle_size: int

    @classmethod
    def _add_argparse_args(cls, parser: _OptionsArgumentParser) -> None:
        parser.add_argument(
            "--direct_num_workers",
            type=_positive_int,
            default=1,
            help="Number of parallel workers (>= 1).",
        )
        parser.add_argument(
            "--direct_running_mode",
            default="in_memory",
            choices=["in_memory", "multi_threading", "multi_processing"],
            help="Run workers in this process, in threads, or in separate processes.",
        )
        parser.add_argument(
            "--direct_memory_budget_mb",
            type=_positive_int,
            default=256,
            help="Memory for grouping and combining, in MiB, before spilling to disk (>= 1).",
        )
        parser.add_argument(
            "--direct_bundle_size",
            type=_positive_int,
            default=1024,
            help="Elements per chunk moved between fused operators (>= 1).",
        )


class RayOptions(PipelineOptions):
    """Settings of the Ray runner (``--runner=RayRunner``)."""

    ray_address: str | None
    ray_num_cpus: int | None
    ray_partitions: int | None
    ray_max_in_flight: int | None

    @classmethod
    def _add_argparse_args(cls, parser: _OptionsArgumentParser) -> None:
        parser.add_argument(
            "--ray_address",
            default=None,
            help="Address of a running Ray cluster (e.g. ray://head:10001 or head:6379); default: "
            "$RAY_ADDRESS, else a local Ray started for the run and stopped after it.",
        )
        parser.add_argument(
            "--ray_num_cpus",
            type=_positive_int,
            default=None,
            help="CPUs of the local Ray started when no address is given (>= 1); default: "
            "every CPU of the machine, as ray.init() counts them.",
        )
        parser.add_argument(
            "--ray_partitions",
            type=_positive_int,
            default=None,
            help="Partitions of each grouping (default: the cluster's CPUs).",
        )
        parser.add_argument(
            "--ray_max_in_flight",
            type=_positive_int,
            default=None,
            help="Tasks submitted to Ray at once (default: twice the partitions).",
        )


class SetupOptions(PipelineOptions):
    """How user code and its dependencies are shipped to workers."""

    save_main_session: bool
    pickle_library: str
    requirements_file: str | None

    @classmethod
    def _add_argparse_args(cls, parser: _OptionsArgumentParser) -> None:
        parser.add_argument(
            "--save_main_session",
            action="store_true",
            default=False,
            help="Pickle the __main__ module's globals for workers.",
        )
        parser.add_argument(
            "--pickle_library",
            default="cloudpickle",
            choices=["cloudpickle", "default", "dill"],
            help="Serialiser for user code; 'default' and 'dill' are accepted for Beam "
            "compatibility (runners decide how to honour them).",
        )
        parser.add_argument(
            "--requirements_file",
            default=None,
            help="A pip requirements file that workers need installed.",
        )


class DebugOptions(PipelineOptions):
    """Experiments: free-form ``--experiments=name`` or ``--experiments=name=value`` switches."""

    experiments: list[str] | None

    @classmethod
    def _add_argparse_args(cls, parser: _OptionsArgumentParser) -> None:
        parser.add_argument(
            "--experiments",
            action="append",
            default=None,
            help="Enable an experiment; may be repeated.",
        )

    def lookup_experiment(self, key: str, default: Any = None) -> Any:
        """Experiment ``key``'s value (``True`` if given without ``=value``), else ``default``."""
        for experiment in self.experiments or ():
            name, sep, value = experiment.partition("=")
            if name == key:
                return value if sep else True
        return default

    def add_experiment(self, experiment: str) -> None:
        """Enable ``experiment`` (no effect if it is already enabled)."""
        experiments = list(self.experiments or ())
        if experiment not in experiments:
            experiments.append(experiment)
        self.experiments = experiments


class TypeOptions(PipelineOptions):
    """Type checking at construction time and at run time."""

    pipeline_type_check: bool
    runtime_type_check: bool
    performance_runtime_type_check: bool
    type_check_strictness: str
    type_check_additional: str
    allow_unsafe_triggers: bool
    allow_non_deterministic_key_coders: bool

    @classmethod
    def _add_argparse_args(cls, parser: _OptionsArgumentParser) -> None:
        parser.add_argument(
            "--allow_non_deterministic_key_coders",
            action="store_true",
            default=False,
            help="Accepted for Beam compatibility: headrace groups keys by equality, not by "
            "their encoding, so key coders need not be deterministic.",
        )
        parser.add_argument(
            "--type_check_strictness",
            default="DEFAULT_TO_ANY",
            choices=["ALL_REQUIRED", "DEFAULT_TO_ANY"],
            help="ALL_REQUIRED: every transform feeding a checked one must declare its output "
            "type.",
        )
        parser.add_argument(
            "--type_check_additional",
            default="",
            help="Comma-separated extra checks (accepted for Beam compatibility).",
        )
        parser.add_argument(
            "--performance_runtime_type_check",
            action="store_true",
            default=False,
            help="Check element types against type hints while the pipeline runs.",
        )
        parser.add_argument(
            "--no_pipeline_type_check",
            dest="pipeline_type_check",
            action="store_false",
            default=True,
            help="Disable type checking when the pipeline is built.",
        )
        parser.add_argument(
            "--runtime_type_check",
            action="store_true",
            default=False,
            help="Check element types against type hints while the pipeline runs (slow).",
        )
        parser.add_argument(
            "--allow_unsafe_triggers",
            action="store_true",
            default=False,
            help="Allow triggers that may lose or duplicate data instead of rejecting them.",
        )
