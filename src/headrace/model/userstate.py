"""User state and timers: the specs a stateful DoFn declares, under Beam's names.

A stateful DoFn asks for state cells and timers with default arguments of ``process`` (and of
its timer callbacks): ``buffer=DoFn.StateParam(BUFFER)``, ``flush=DoFn.TimerParam(FLUSH)``. The
specs (:class:`BagStateSpec`, :class:`TimerSpec`, ...) are plain, picklable descriptions; the
runtime objects a DoFn receives live in :mod:`headrace.exec.userstate`, one cell per key, window
and spec name. A timer fires a method marked with :func:`on_timer`.

:func:`describe_stateful_dofn` inspects a DoFn once and returns a :class:`StatefulDoFnInfo`
(state specs and timer specs by name, and the name of each timer's callback method); it raises a
:class:`ValueError` naming the DoFn when two different specs share a name, when a timer has no
``@on_timer`` callback, or when a spec is passed to the wrong kind of parameter.

State and timer names live in two namespaces: a state cell and a timer may share a name. In
merging windows (Sessions) bags, sets and combining values merge; a read-modify-write cell cannot
(Beam forbids it), see :func:`check_merging_windows`.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from headrace.model.coders import Coder
from headrace.model.transforms.dofn import CombineFn, _DoFnParam

__all__ = [
    "BagStateSpec",
    "CombiningValueStateSpec",
    "ReadModifyWriteStateSpec",
    "SetStateSpec",
    "StateSpec",
    "StatefulDoFnInfo",
    "TimeDomain",
    "TimerSpec",
    "check_merging_windows",
    "describe_stateful_dofn",
    "get_dofn_specs",
    "get_state_specs",
    "get_timer_specs",
    "is_stateful_dofn",
    "on_timer",
    "timer_callbacks",
    "validate_stateful_dofn",
]

CallableT = TypeVar("CallableT", bound=Callable[..., Any])

# The attribute @on_timer puts on a callback function: the TimerSpec it handles.
_ON_TIMER_ATTR = "_headrace_on_timer"


class TimeDomain(enum.StrEnum):
    """The clock a timer follows: event time (the watermark) or processing time.

    Members are strings, as in Beam (``TimeDomain.WATERMARK == "WATERMARK"``). ``EVENT_TIME`` and
    ``PROCESSING_TIME`` are aliases of ``WATERMARK`` and ``REAL_TIME`` (Beam's portable names).

    >>> TimeDomain.WATERMARK == "WATERMARK", TimeDomain.EVENT_TIME is TimeDomain.WATERMARK
    (True, True)
    >>> TimeDomain.from_string("REAL_TIME")
    <TimeDomain.REAL_TIME: 'REAL_TIME'>
    """

    WATERMARK = "WATERMARK"
    REAL_TIME = "REAL_TIME"
    DEPENDENT_REAL_TIME = "DEPENDENT_REAL_TIME"
    EVENT_TIME = "WATERMARK"
    PROCESSING_TIME = "REAL_TIME"

    @staticmethod
    def from_string(domain: str) -> TimeDomain:
        """The member named by ``domain`` (``"WATERMARK"``, ``"REAL_TIME"``, or an alias)."""
        try:
            return TimeDomain(domain)
        except ValueError:
            pass
        member = TimeDomain.__members__.get(str(domain))
        if member is None:
            raise ValueError(
                f"unknown time domain {domain!r}; use TimeDomain.WATERMARK (event time) or "
                "TimeDomain.REAL_TIME (processing time)"
            )
        return member

    @staticmethod
    def is_event_time(domain: str) -> bool:
        """Whether ``domain`` is event time."""
        return TimeDomain.from_string(domain) is TimeDomain.WATERMARK


# -- state specs -----------------------------------------------------------------------------------


class StateSpec:
    """A named state cell of a stateful DoFn (base class of the state spec kinds).

    ``coder`` may be None or any :class:`~headrace.model.coders.Coder`; headrace keeps state in
    memory as Python objects, so the coder is recorded but not needed.
    """

    # Short kind name used by the executors: "value", "bag", "combining", "set".
    kind: str = ""

    def __init__(self, name: str, coder: Coder | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"{type(self).__name__} needs a non-empty string name as its first argument, "
                f"got {name!r}"
            )
        if coder is not None and not isinstance(coder, Coder):
            raise TypeError(
                f"{type(self).__name__}({name!r}) was given coder={coder!r}, which is not a Coder; "
                "pass a headrace.beam.coders coder (e.g. VarIntCoder()) or None"
            )
        self.name = name
        self.coder = coder

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class ReadModifyWriteStateSpec(StateSpec):
    """A single value per key and window: ``read()``, ``write(value)``, ``clear()``.

    >>> ReadModifyWriteStateSpec("last_seen")
    ReadModifyWriteStateSpec(last_seen)
    """

    kind = "value"


class BagStateSpec(StateSpec):
    """An unordered collection per key and window: ``add(value)``, ``read()``, ``clear()``.

    >>> from headrace.model.coders import VarIntCoder
    >>> BagStateSpec("buffer", VarIntCoder()).coder
    VarIntCoder()
    """

    kind = "bag"


class SetStateSpec(StateSpec):
    """A set of distinct values per key and window: ``add(value)``, ``read()``, ``clear()``.

    >>> SetStateSpec("seen").name
    'seen'
    """

    kind = "set"


class CombiningValueStateSpec(StateSpec):
    """A value combined from everything added, with a CombineFn (or a function like ``sum``).

    As in Beam, the coder may be left out: ``CombiningValueStateSpec("total", sum)``.

    >>> spec = CombiningValueStateSpec("total", sum)
    >>> spec.combine_fn.apply([1, 2, 3]), spec.coder is None
    (6, True)
    """

    kind = "combining"

    def __init__(self, name: str, coder: Any = None, combine_fn: Any = None) -> None:
        if combine_fn is None and coder is not None and not isinstance(coder, Coder):
            coder, combine_fn = None, coder
        if combine_fn is None:
            raise ValueError(
                f"CombiningValueStateSpec({name!r}) needs a combine_fn: a CombineFn or a function "
                "of an iterable such as sum, e.g. CombiningValueStateSpec('total', sum)"
            )
        try:
            self.combine_fn = CombineFn.maybe_from_callable(combine_fn)
        except TypeError:
            raise TypeError(
                f"CombiningValueStateSpec({name!r}) was given combine_fn={combine_fn!r}; "
                "pass a CombineFn or a function of an iterable such as sum"
            ) from None
        super().__init__(name, coder)


# -- timers ----------------------------------------------------------------------------------------


class TimerSpec:
    """A named timer of a stateful DoFn, in event time or processing time.

    Set it from ``process`` through ``DoFn.TimerParam(spec)``; when it fires, headrace calls the
    DoFn method marked ``@on_timer(spec)``.

    >>> TimerSpec("flush", TimeDomain.WATERMARK)
    TimerSpec(flush, WATERMARK)
    """

    def __init__(self, name: str, time_domain: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"TimerSpec needs a non-empty string name, got {name!r}")
        try:
            domain = TimeDomain.from_string(time_domain)
        except ValueError:
            domain = TimeDomain.DEPENDENT_REAL_TIME
        if domain is TimeDomain.DEPENDENT_REAL_TIME:
            raise ValueError(
                f"TimerSpec({name!r}) has time domain {time_domain!r}; timers support "
                "TimeDomain.WATERMARK (event time) and TimeDomain.REAL_TIME (processing time)"
            )
        self.name = name
        self.time_domain = domain

    def __repr__(self) -> str:
        return f"TimerSpec({self.name}, {self.time_domain.value})"


def on_timer(timer_spec: TimerSpec) -> Callable[[CallableT], CallableT]:
    """Mark a DoFn method as the callback of ``timer_spec``.

    The callback may ask for the same parameters as ``process`` (``DoFn.KeyParam``,
    ``DoFn.WindowParam``, ``DoFn.TimestampParam``, state and timer params) and may yield outputs.

    >>> from headrace.model.transforms.dofn import DoFn
    >>> FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
    >>> class Buffer(DoFn):
    ...     def process(self, kv, flush=DoFn.TimerParam(FLUSH)):
    ...         flush.set(0)
    ...     @on_timer(FLUSH)
    ...     def on_flush(self, key=DoFn.KeyParam):
    ...         yield key
    >>> timer_callbacks(Buffer())["flush"].__name__
    'on_flush'
    """
    if not isinstance(timer_spec, TimerSpec):
        raise TypeError(f"@on_timer needs a TimerSpec, got {timer_spec!r}")

    def mark(method: CallableT) -> CallableT:
        if not callable(method):
            raise TypeError(f"@on_timer({timer_spec!r}) must decorate a method, got {method!r}")
        # one method may be the callback of several timers, as in Beam (stacked @on_timer)
        specs = getattr(method, _ON_TIMER_ATTR, ())
        if timer_spec not in specs:
            setattr(method, _ON_TIMER_ATTR, (*specs, timer_spec))
        return method

    return mark


# -- discovery -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatefulDoFnInfo:
    """What a DoFn declares: state specs and timer specs by name, callback method per timer."""

    state_specs: dict[str, StateSpec] = field(default_factory=dict)
    timer_specs: dict[str, TimerSpec] = field(default_factory=dict)
    callbacks: dict[str, str] = field(default_factory=dict)

    @property
    def is_stateful(self) -> bool:
        return bool(self.state_specs or self.timer_specs)


def _params(fn: Callable[..., Any]) -> list[tuple[str, _DoFnParam]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [
        (p.name, p.default)
        for p in sig.parameters.values()
        if isinstance(p.default, _DoFnParam) and p.default.kind in ("state", "timer")
    ]


def _refuse_dynamic_timer_tags(owner: str, method_name: str, fn: Callable[..., Any]) -> None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return
    for p in params:
        if isinstance(p.default, _DoFnParam) and p.default.kind == "dynamic_timer_tag":
            raise NotImplementedError(
                f"{owner}.{method_name}() parameter {p.name!r} asks for "
                "DoFn.DynamicTimerTagParam: dynamic timer tags (timer families) are not "
                "supported by headrace yet; use one TimerSpec per timer"
            )


def _timer_methods(dofn: Any) -> list[tuple[str, TimerSpec]]:
    """(method name, spec) for every method of ``dofn``'s class marked with @on_timer."""
    cls = type(dofn)
    out: list[tuple[str, TimerSpec]] = []
    for name in sorted({n for klass in cls.__mro__ for n in vars(klass)}):
        attr = getattr(cls, name, None)
        specs = getattr(attr, _ON_TIMER_ATTR, ()) if callable(attr) else ()
        out.extend((name, spec) for spec in specs if isinstance(spec, TimerSpec))
    return out


def describe_stateful_dofn(dofn: Any) -> StatefulDoFnInfo:
    """Discover and validate the state specs, timer specs and timer callbacks of ``dofn``.

    Scans ``process`` and every ``@on_timer`` method. Raises :class:`ValueError` naming the DoFn
    for duplicate names, timers without a callback, two callbacks for one timer, or a spec passed
    to the wrong parameter kind.

    >>> from headrace.model.transforms.dofn import DoFn
    >>> COUNT = CombiningValueStateSpec("count", sum)
    >>> class Counter(DoFn):
    ...     def process(self, kv, count=DoFn.StateParam(COUNT)):
    ...         count.add(1)
    >>> info = describe_stateful_dofn(Counter())
    >>> info.state_specs, info.timer_specs, info.is_stateful
    ({'count': CombiningValueStateSpec(count)}, {}, True)
    """
    owner = type(dofn).__name__
    methods = _timer_methods(dofn)
    callbacks: dict[str, str] = {}
    callback_specs: dict[str, TimerSpec] = {}
    for method_name, spec in methods:
        if spec.name in callbacks:
            raise ValueError(
                f"DoFn {owner} has two @on_timer callbacks for timer {spec.name!r}: "
                f"{callbacks[spec.name]}() and {method_name}(); keep one"
            )
        callbacks[spec.name] = method_name
        callback_specs[spec.name] = spec
    scanned: list[tuple[str, Callable[..., Any]]] = []
    process = getattr(dofn, "process", None)
    if process is not None:
        scanned.append(("process", process))
    scanned.extend((name, getattr(dofn, name)) for name, _ in methods)
    states: dict[str, StateSpec] = {}
    timers: dict[str, TimerSpec] = {}
    for method_name, fn in scanned:
        _refuse_dynamic_timer_tags(owner, method_name, fn)
        for param, marker in _params(fn):
            spec = marker.spec
            where = f"{owner}.{method_name}() parameter {param!r}"
            if marker.kind == "state":
                if not isinstance(spec, StateSpec):
                    timer = isinstance(spec, TimerSpec)
                    hint = " (use DoFn.TimerParam for timers)" if timer else ""
                    raise ValueError(
                        f"{where} is DoFn.StateParam({spec!r}); StateParam needs a state spec "
                        f"such as BagStateSpec{hint}"
                    )
                _add_unique(states, spec, owner, "state")
            else:
                if not isinstance(spec, TimerSpec):
                    state = isinstance(spec, StateSpec)
                    hint = " (use DoFn.StateParam for state)" if state else ""
                    raise ValueError(
                        f"{where} is DoFn.TimerParam({spec!r}); TimerParam needs a TimerSpec{hint}"
                    )
                _add_unique(timers, spec, owner, "timer")
    for name, spec in timers.items():
        if name not in callbacks:
            raise ValueError(
                f"DoFn {owner} uses timer {name!r} but has no callback for it; mark a method "
                f"with @on_timer({spec!r}) (headrace.beam.transforms.userstate.on_timer)"
            )
        if callback_specs[name] is not spec:
            raise ValueError(
                f"DoFn {owner} has two different TimerSpecs named {name!r} (one in a "
                f"TimerParam, one in @on_timer on {callbacks[name]}()); declare the spec once "
                "and use it in both"
            )
    return StatefulDoFnInfo(states, timers, callbacks)


def _add_unique(specs: dict[str, Any], spec: Any, owner: str, what: str) -> None:
    existing = specs.get(spec.name)
    if existing is None:
        specs[spec.name] = spec
    elif existing is not spec:
        raise ValueError(
            f"DoFn {owner} declares two different {what} specs named {spec.name!r} "
            f"({existing!r} and {spec!r}); names must be unique: declare each spec once, "
            f"e.g. as a class attribute, and pass that object to every parameter"
        )


def get_state_specs(dofn: Any) -> dict[str, StateSpec]:
    """The state specs of ``dofn`` by name (validated, see :func:`describe_stateful_dofn`)."""
    return describe_stateful_dofn(dofn).state_specs


def get_timer_specs(dofn: Any) -> dict[str, TimerSpec]:
    """The timer specs of ``dofn`` by name (validated, see :func:`describe_stateful_dofn`)."""
    return describe_stateful_dofn(dofn).timer_specs


def timer_callbacks(dofn: Any) -> dict[str, Callable[..., Any]]:
    """The bound ``@on_timer`` methods of ``dofn``, by timer name."""
    return {spec.name: getattr(dofn, method) for method, spec in _timer_methods(dofn)}


def get_dofn_specs(dofn: Any) -> tuple[set[StateSpec], set[TimerSpec]]:
    """Beam's form: the sets of state specs and timer specs of ``dofn``."""
    info = describe_stateful_dofn(dofn)
    return set(info.state_specs.values()), set(info.timer_specs.values())


def is_stateful_dofn(dofn: Any) -> bool:
    """Whether ``dofn`` uses user state or timers."""
    return describe_stateful_dofn(dofn).is_stateful


def validate_stateful_dofn(dofn: Any) -> None:
    """Raise a clear :class:`ValueError` if ``dofn``'s state or timer declarations are wrong."""
    describe_stateful_dofn(dofn)


def check_merging_windows(state_specs: Iterable[StateSpec], owner: str) -> None:
    """Refuse read-modify-write state in merging windows (Beam forbids it).

    ``owner`` names the transform or DoFn in the message.

    >>> check_merging_windows([BagStateSpec("buf")], "ParDo(Buffer)")
    >>> check_merging_windows([ReadModifyWriteStateSpec("last")], "ParDo(Last)")
    Traceback (most recent call last):
    ...
    ValueError: 'ParDo(Last)' uses ReadModifyWriteStateSpec('last') in merging windows ...
    """
    for spec in state_specs:
        if isinstance(spec, ReadModifyWriteStateSpec):
            raise ValueError(
                f"{owner!r} uses ReadModifyWriteStateSpec({spec.name!r}) in merging windows "
                "(such as Sessions), where two windows' values cannot be merged; use a "
                "CombiningValueStateSpec, a BagStateSpec or a SetStateSpec, or non-merging windows"
            )
