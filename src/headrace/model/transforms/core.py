"""The core transforms: ParDo and its Map family, GroupByKey, Combine, Create, Flatten, windows.

Primitives record one graph node each (``Impulse``, ``Read``, ``ParDo``, ``GroupByKey``,
``Flatten``, ``WindowInto``); ``CombinePerKey`` is a composite of GroupByKey and a combining ParDo
that planners may lift into a pre-aggregating shuffle. Everything else composes these.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import logging
import numbers
import pickle
import textwrap
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from headrace.graph.kinds import COMBINE_PER_KEY, GROUP_BY_KEY, GroupingParams, ParDoParams
from headrace.graph.nodes import Payload, WindowingStrategy
from headrace.model.immutable import deeply_immutable
from headrace.model.pvalue import (
    AsList,
    AsSideInput,
    AsSingleton,
    DoOutputsTuple,
    PBegin,
    PCollection,
    TaggedOutput,
)
from headrace.model.sources import BoundedSource
from headrace.model.timestamp import Duration, to_micros
from headrace.model.transforms.dofn import (
    CallableWrapperCombineFn,
    CombineFn,
    DoFn,
    _DoFnParam,
    context_params,
    describe_params,
    state_and_timer_specs,
)
from headrace.model.transforms.ptransform import PTransform
from headrace.model.trigger import DefaultTrigger
from headrace.model.typehints import (
    KV_HINT,
    K,
    TypeCheckError,
    format_hint,
    is_consistent_with,
    iterable_element_type,
    key_value_types,
    kv_of,
    main_input_hint,
    output_hint,
)
from headrace.model.window import GlobalWindows, TimestampCombiner, TimestampedValue, WindowFn
from headrace.model.windowing import Windowing

_LOG = logging.getLogger(__name__)
_LOGGER = logging.getLogger(__name__)

__all__ = [
    "CombineFn",
    "CombineGlobally",
    "CombinePerKey",
    "CombineValues",
    "Create",
    "DoFn",
    "Filter",
    "FinishingTriggerWarning",
    "FlatMap",
    "FlatMapTuple",
    "Flatten",
    "GroupByKey",
    "Impulse",
    "Map",
    "MapTuple",
    "ParDo",
    "Partition",
    "PartitionFn",
    "Read",
    "WindowInto",
    "Windowing",
]


def _fn_label(fn: Any) -> str:
    if isinstance(fn, DoFn):
        return fn.default_label()
    name = getattr(fn, "__name__", None)
    if name == "<lambda>":
        code = getattr(fn, "__code__", None)
        if code is not None:
            return f"<lambda at {code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}>"
    return name or type(fn).__name__


def _scan_side_inputs(
    args: Sequence[Any], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], list[tuple[AsSideInput, str]]]:
    """Replace side-input views in args/kwargs by None and say where they were."""
    sides: list[tuple[AsSideInput, str]] = []
    new_args = list(args)
    for i, a in enumerate(args):
        if isinstance(a, PCollection):
            raise TypeError(
                f"a PCollection was passed as argument {i + 1}; pass it as a side input view, "
                "e.g. beam.pvalue.AsList(pcoll) or AsSingleton(pcoll)"
            )
        if isinstance(a, AsSideInput):
            sides.append((a, str(i)))
            new_args[i] = None
    new_kwargs = dict(kwargs)
    for k, v in kwargs.items():
        if isinstance(v, PCollection):
            raise TypeError(f"a PCollection was passed as {k}=; pass AsList(pcoll) or similar")
        if isinstance(v, AsSideInput):
            sides.append((v, f"kw:{k}"))
            new_kwargs[k] = None
    return tuple(new_args), new_kwargs, sides


class ParDo(PTransform):
    """Apply a :class:`DoFn` to every element; extra args may include side-input views.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.pvalue import TaggedOutput
    >>> from headrace.testing.util import assert_that, equal_to
    >>> class Parity(DoFn):
    ...     def process(self, x):
    ...         yield x if x % 2 == 0 else TaggedOutput("odd", x)
    >>> with Pipeline() as p:
    ...     out = p | Create([1, 2, 3]) | ParDo(Parity()).with_outputs("odd", main="even")
    ...     assert_that(out.even, equal_to([2]), label="CheckEven")
    ...     assert_that(out["odd"], equal_to([1, 3]), label="CheckOdd")
    """

    _fn_kind = "dofn"
    _checks_like_pardo = True

    def __init__(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if isinstance(fn, type) and issubclass(fn, DoFn):
            raise ValueError(f"ParDo needs a DoFn instance, got the class {fn.__name__}; add ()")
        self._wrapped_callable: Callable[..., Any] | None = None
        if not isinstance(fn, DoFn):
            if not callable(fn):
                raise TypeError(f"ParDo needs a DoFn or a function, got {fn!r}")
            # Beam wraps a plain function as a DoFn whose process is the function: it returns
            # (or yields) an iterable of outputs, like FlatMap's.
            self._wrapped_callable = fn
            fn = _CallableDoFn(fn, "flatmap")
        else:
            _warn_about_process_returns(typing.cast(typing.Hashable, type(fn)))
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self._tags: tuple[str, ...] = ()
        self._main_tag: str | None = None
        self._main_declared = False
        self._allow_unknown_tags = False

    def default_label(self) -> str:
        return f"ParDo({_fn_label(self.fn)})"

    def with_outputs(
        self, *tags: str, main: str | None = None, allow_unknown_tags: Any = None
    ) -> ParDo:
        """Declare additional outputs; the result is a DoOutputsTuple."""
        for t in tags:
            if not isinstance(t, str):
                raise TypeError(f"output tags must be strings, got {t!r}")
        self._tags = tuple(tags)
        self._main_tag = main if main is not None else "main"
        self._main_declared = main is not None
        # Beam: without declared tags any tag may be read (and is created when read).
        self._allow_unknown_tags = not tags if allow_unknown_tags is None else allow_unknown_tags
        if self._main_tag in self._tags:
            raise ValueError(f"main tag {self._main_tag!r} is also declared as an additional tag")
        return self

    def with_exception_handling(self, main_tag: str | None = None, **kwargs: Any) -> Any:
        """Route inputs whose processing raises to a dead-letter output instead of failing:
        ``good, bad = pcoll | Map(f).with_exception_handling()``; see
        :mod:`headrace.model.transforms.deadletter`."""
        from headrace.model.transforms.deadletter import with_exception_handling

        return with_exception_handling(self, main_tag, **kwargs)

    def with_error_handler(self, error_handler: Any, **kwargs: Any) -> Any:
        if error_handler is None:
            return self
        return self.with_exception_handling(error_handler=error_handler, **kwargs)

    def _process_callable(self) -> Callable[..., Any]:
        if self._wrapped_callable is not None:
            return self._wrapped_callable
        return self.fn.process

    def _input_hint(self) -> Any:
        if self._input_type_hint is not None:
            return self._input_type_hint
        return main_input_hint(self._hinted_fn(), self._process_callable())

    def _output_hint(self) -> Any:
        if self._output_type_hint is not None or self._tags:
            return self._output_type_hint
        hint = output_hint(self._hinted_fn())
        if hint is not None and self._fn_kind in ("flatmap", "flatmaptuple"):
            return iterable_element_type(hint)
        if hint is not None and self._fn_kind == "dofn" and self._wrapped_callable is not None:
            # ParDo(function): the function returns an iterable of outputs, as FlatMap's does.
            element = iterable_element_type(hint)
            return hint if element is None else element
        return hint

    def _hinted_fn(self) -> Any:
        """The user object carrying @with_input_types/@with_output_types hints."""
        return self._wrapped_callable if self._wrapped_callable is not None else self.fn

    def _maybe_runtime_checked(self, pcoll: PCollection, fn: Any) -> Any:
        """The DoFn to run: wrapped in a type check when ``runtime_type_check`` is on and the
        transform has hints."""
        from headrace.model.options import TypeOptions

        input_hint, output_hint = self._input_hint(), self._output_hint()
        opts = pcoll.pipeline.options.view_as(TypeOptions)
        # With runtime_type_check Beam wraps every DoFn: what process() returns is checked too.
        hinted = input_hint is not None or output_hint is not None
        if not opts.runtime_type_check and not (hinted and opts.performance_runtime_type_check):
            return fn
        from headrace.model.transforms.typecheck import TypeCheckDoFn

        return TypeCheckDoFn(fn, self.label, input_hint, output_hint)

    def expand(self, pcoll: PCollection) -> Any:
        if not isinstance(pcoll, PCollection):
            raise TypeError(f"{self.label!r} must be applied to a PCollection, not {pcoll!r}")
        process = self._process_callable()
        args, kwargs = _bind_args_around_markers(
            self.label, process, self._fn_kind, self.args, self.kwargs
        )
        args, kwargs, sides = _scan_side_inputs(args, kwargs)
        params = describe_params(process, skip_first=0 if inspect.ismethod(process) else 1)
        contexts = context_params(process)
        for name in contexts:
            del params[name]
        for name in [n for n, kind in params.items() if kind == "side_input"]:
            del params[name]  # filled from the extra arguments by _bind_args_around_markers
        _check_supported_params(self.label, params)
        state = state_and_timer_specs(process)
        if state and not _maybe_keyed(pcoll):
            raise ValueError(
                f"Input elements to the transform {self.label!r} with stateful DoFn must be "
                f"key-value pairs. It uses state or timers, kept per key; {pcoll!r} has elements "
                f"of type {pcoll.element_type!r}"
            )
        outputs = (self._main_tag or "main", *self._tags)
        fn: Any = self.fn
        if contexts:
            from headrace.model.transforms.contexts import ContextParamsDoFn

            fn = ContextParamsDoFn(fn, contexts)
        fn = self._maybe_runtime_checked(pcoll, fn)
        result = pcoll.pipeline._apply_primitive(
            self,
            "ParDo",
            [pcoll],
            payload=(fn, args, kwargs),
            outputs=outputs,
            side_inputs=sides,
            params=ParDoParams(
                fn_kind=self._fn_kind if fn is self.fn else "dofn",
                main_tag=outputs[0],
                tags=list(outputs),
                dofn_params=params,
                stateful=bool(state),
                **({"allow_unknown_tags": True} if self._allow_unknown_tags else {}),
            ),
            multi_output=bool(self._tags) or self._main_tag is not None,
        )
        if isinstance(result, DoOutputsTuple):
            result._unpack_main = self._main_declared
        return result


@functools.lru_cache(maxsize=1024)
def _warn_about_process_returns(cls: Any) -> None:
    """Beam's construction-time warnings about ``process`` (apache_beam/transforms/core.py):
    yielding and also returning a value (the returned value is lost), or an explicit
    ``return None`` (nothing is emitted for that element). Once per DoFn class."""
    process: Any = getattr(cls, "process", None)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(process)))
    except (OSError, TypeError, SyntaxError):
        return
    func = tree.body[0] if tree.body else None
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return
    yields = returns_value = returns_none = False
    todo: list[ast.AST] = list(func.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue  # an inner function's yields and returns are its own
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            yields = True
        elif isinstance(node, ast.Return) and node.value is not None:
            returns_value = True
            if isinstance(node.value, ast.Constant) and node.value.value is None:
                returns_none = True
        todo.extend(ast.iter_child_nodes(node))
    if yields and returns_value:
        _LOG.warning(
            "Using yield and return in the process method of %s can lead to unexpected "
            "behavior: a generator's returned value is dropped; yield it instead",
            cls,
        )
    elif returns_none:
        _LOG.warning(
            "Process method returned None (element won't be emitted): %s. Check if intended.",
            cls,
        )


def _bind_args_around_markers(
    label: str,
    process: Callable[..., Any],
    fn_kind: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Give the ParDo's extra positional arguments to the parameters Beam gives them to.

    Beam (apache_beam/runners/common.py, the DoFn's argument placeholders) hands the extra
    arguments, in order, to the parameters after the element that do not ask for a runner value
    (``TimestampParam``...); ``DoFn.SideInputParam`` marks a parameter that takes one of them.
    headrace fills the markers by keyword, so an extra argument meant for a parameter after a
    marker is passed by that parameter's name instead of by position.
    """
    if fn_kind in ("maptuple", "flatmaptuple"):
        return args, kwargs
    try:
        sig = inspect.signature(process)
    except (TypeError, ValueError):
        return args, kwargs
    params = list(sig.parameters.values())[1:]  # after the element
    markers = [p for p in params if isinstance(p.default, _DoFnParam)]
    if not markers:
        return args, kwargs
    remaining = list(args)
    bound: dict[str, Any] = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY):
            break
        marker = p.default if isinstance(p.default, _DoFnParam) else None
        if marker is not None and marker.kind != "side_input":
            continue  # the runner fills it
        if remaining:
            if p.kind is p.POSITIONAL_ONLY or p.name in kwargs:
                return args, kwargs
            bound[p.name] = remaining.pop(0)
        elif marker is not None and p.name not in kwargs:
            raise ValueError(
                f"{label!r}: parameter {p.name!r} is a DoFn.SideInputParam but no side input "
                "is left for it; pass one more view (e.g. beam.pvalue.AsList(pcoll)) to the "
                f"ParDo, or pass it as {p.name}=..."
            )
    if remaining:  # more arguments than named parameters: Python's *args takes them
        return args, kwargs
    return (), {**kwargs, **bound}


# DoFn parameters the executors fill in; other markers are refused when the transform is applied.
_SUPPORTED_PARAMS = frozenset({"timestamp", "window", "pane", "element", "key", "state", "timer"})


def _check_supported_params(label: str, params: dict[str, str]) -> None:
    for name, kind in params.items():
        if kind not in _SUPPORTED_PARAMS:
            marker = "".join(part.capitalize() for part in kind.split("_"))
            raise NotImplementedError(
                f"{label!r}: parameter {name!r} asks for DoFn.{marker}Param, which headrace "
                "does not support yet; remove it (supported: ElementParam, TimestampParam, "
                "WindowParam, PaneInfoParam, KeyParam, StateParam, TimerParam)"
            )


def _maybe_keyed(pcoll: PCollection) -> bool:
    t = pcoll.element_type
    return t is None or t in (tuple, list, Any) or is_consistent_with(t, KV_HINT)


class _CallableDoFn(DoFn):
    """The DoFn behind Map, FlatMap, Filter, MapTuple and FlatMapTuple."""

    # Executors iterate whatever the function returns, a str included (Beam's
    # CallableWrapperDoFn is exempt from the str/bytes/dict check as well).
    wraps_callable = True

    def __init__(self, fn: Callable[..., Any], kind: str) -> None:
        if not callable(fn):
            raise TypeError(f"{kind} needs a callable, got {fn!r}")
        self.fn = fn
        self.kind = kind

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any] | None:
        fn = self.fn
        kind = self.kind
        if kind == "map":
            return (fn(element, *args, **kwargs),)
        if kind == "flatmap":
            return fn(element, *args, **kwargs)
        if kind == "filter":
            return (element,) if fn(element, *args, **kwargs) else ()
        if kind == "maptuple":
            return (fn(*element, *args, **kwargs),)
        return fn(*element, *args, **kwargs)

    def default_label(self) -> str:
        return _fn_label(self.fn)


class _CallableParDo(ParDo):
    _label_prefix = "Map"

    def __init__(self, fn: Callable[..., Any], kind: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(_CallableDoFn(fn, kind), *args, **kwargs)
        self._fn_kind = kind
        self._user_fn = fn

    def default_label(self) -> str:
        return f"{self._label_prefix}({_fn_label(self._user_fn)})"

    def _process_callable(self) -> Callable[..., Any]:
        return self._user_fn

    def _hinted_fn(self) -> Any:
        return self._user_fn

    def expand(self, pcoll: PCollection) -> Any:
        result = super().expand(pcoll)
        if (
            self._fn_kind == "map"
            and isinstance(result, PCollection)
            and self._output_hint() is None
            and not self.args
            and not self.kwargs
        ):
            # Beam infers a Map's output type from its function (trivial_inference); the
            # simple cases only, see headrace.model.inference.
            from headrace.model.inference import infer_return_type

            inferred = infer_return_type(self._user_fn, [pcoll.element_type])
            if inferred is not None:
                result.element_type = inferred
        return result


def _identity(x: Any) -> Any:
    return x


def _callable_transform(kind: str, prefix: str) -> Callable[..., ParDo]:
    def make(fn: Callable[..., Any] | None = None, *args: Any, **kwargs: Any) -> ParDo:
        if fn is None and kind == "flatmap":
            fn = _identity  # Beam's FlatMap() flattens iterable elements
        if not callable(fn):
            raise TypeError(f"{prefix} needs a callable, got {fn!r}")
        t = _CallableParDo(fn, kind, *args, **kwargs)
        t._label_prefix = prefix
        return t

    make.__name__ = prefix
    return make


Map = _callable_transform("map", "Map")
Map.__doc__ = """Apply ``fn`` to each element, one output per input.

>>> from headrace.model.pipeline import Pipeline
>>> from headrace.testing.util import assert_that, equal_to
>>> with Pipeline() as p:
...     assert_that(p | Create([1, 2]) | Map(lambda x, n: x + n, 10), equal_to([11, 12]))
"""
FlatMap = _callable_transform("flatmap", "FlatMap")
FlatMap.__doc__ = """Apply ``fn`` to each element and emit every item of the iterable it returns.

>>> from headrace.model.pipeline import Pipeline
>>> from headrace.testing.util import assert_that, equal_to
>>> with Pipeline() as p:
...     assert_that(p | Create(["a b", "c"]) | FlatMap(str.split), equal_to(["a", "b", "c"]))
"""
Filter = _callable_transform("filter", "Filter")
Filter.__doc__ = """Keep the elements for which ``fn`` is true.

>>> from headrace.model.pipeline import Pipeline
>>> from headrace.testing.util import assert_that, equal_to
>>> with Pipeline() as p:
...     assert_that(p | Create([1, 2, 3, 4]) | Filter(lambda x: x % 2), equal_to([1, 3]))
"""
MapTuple = _callable_transform("maptuple", "MapTuple")
MapTuple.__doc__ = """Like Map, with each (tuple) element unpacked into the arguments of ``fn``.

>>> from headrace.model.pipeline import Pipeline
>>> from headrace.testing.util import assert_that, equal_to
>>> with Pipeline() as p:
...     assert_that(p | Create([("a", 1)]) | MapTuple(lambda k, v: f"{k}={v}"), equal_to(["a=1"]))
"""
FlatMapTuple = _callable_transform("flatmaptuple", "FlatMapTuple")
FlatMapTuple.__doc__ = """Like FlatMap, with each (tuple) element unpacked into the arguments.

>>> from headrace.model.pipeline import Pipeline
>>> from headrace.testing.util import assert_that, equal_to
>>> with Pipeline() as p:
...     out = p | Create([("a", 2)]) | FlatMapTuple(lambda k, n: [k] * n)
...     assert_that(out, equal_to(["a", "a"]))
"""


class GroupByKey(PTransform):
    """Group ``(key, value)`` pairs by key (and window): ``(key, [values])``.

    Output elements of a window carry the window's end as timestamp (Beam's default).

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     grouped = p | Create([("a", 1), ("b", 2), ("a", 3)]) | GroupByKey()
    ...     assert_that(grouped | MapTuple(lambda k, vs: (k, sorted(vs))),
    ...                 equal_to([("a", [1, 3]), ("b", [2])]))
    """

    def expand(self, pcoll: PCollection) -> PCollection:
        _check_keyed(pcoll, self.label)
        return pcoll.pipeline._apply_primitive(
            self,
            GROUP_BY_KEY,
            [pcoll],
            windowing=_continued(pcoll.windowing),
            element_type=_grouped_type(pcoll.element_type),
            params=GroupingParams(),
        )


def _continued(windowing: WindowingStrategy) -> WindowingStrategy:
    """A grouping's output windowing: its input's, with the trigger's continuation trigger, as
    Beam's ``GroupByKey.get_windowing`` (apache_beam/transforms/core.py). A second grouping of
    the output of ``Repeatedly(AfterCount(100))`` fires on every pane it receives
    (``Repeatedly(AfterCount(1))``), not once per 100 of them."""
    if windowing.trigger is None:
        return windowing
    trigger = windowing.trigger.load()
    continued = trigger.get_continuation_trigger()
    if continued == trigger:
        return windowing
    return dataclasses.replace(windowing, trigger=Payload.of(continued))


def _grouped_type(kv: Any) -> Any:
    """``Tuple[K, Iterable[V]]`` for an input of ``Tuple[K, V]`` (else plain ``tuple``)."""
    args = typing.get_args(kv)
    if typing.get_origin(kv) is tuple and len(args) == 2 and args[1] is not Ellipsis:
        tuple_hint: Any = typing.Tuple  # noqa: UP006 - Beam's form
        iterable_hint: Any = typing.Iterable
        return tuple_hint[args[0], iterable_hint[args[1]]]
    return tuple


def _check_keyed(pcoll: PCollection, label: str) -> None:
    if not isinstance(pcoll, PCollection):
        raise TypeError(f"{label!r} must be applied to a PCollection, not {pcoll!r}")
    t = pcoll.element_type
    if not _maybe_keyed(pcoll) and not is_consistent_with(t, KV_HINT):
        raise TypeCheckError(
            f"Input type hint violation at {label}: expected {format_hint(KV_HINT)}, got "
            f"{format_hint(t)}. {label!r} needs (key, value) pairs but its input {pcoll!r} "
            "has other elements; add a beam.Map(lambda x: (key_of(x), x)) or "
            "beam.WithKeys(...) before it"
        )


class CombinePerKey(PTransform):
    """Combine the values of each key with a CombineFn or a callable such as ``sum``.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     totals = p | Create([("a", 1), ("b", 2), ("a", 3)]) | CombinePerKey(sum)
    ...     assert_that(totals, equal_to([("a", 4), ("b", 2)]))
    """

    def __init__(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.fn = CombineFn.maybe_from_callable(fn)
        self.args = args
        self.kwargs = kwargs

    _checks_like_pardo = True

    def default_label(self) -> str:
        return f"CombinePerKey({self.fn.default_label()})"

    def _input_hint(self) -> Any:
        if self._input_type_hint is not None:
            return self._input_type_hint
        value = _combine_input_hint(self.fn)
        return None if value is None else kv_of(K, value)

    def with_hot_key_fanout(self, fanout: Any) -> CombinePerKey:
        """Beam's hint to pre-combine hot keys over ``fanout`` intermediate keys.

        headrace already combines each bundle before the shuffle (combiner lifting), so the
        hint changes nothing in the result and is accepted for compatibility.
        """
        if not callable(fanout) and (not isinstance(fanout, int) or fanout < 0):
            raise ValueError(f"with_hot_key_fanout needs an int >= 0 or a function, got {fanout!r}")
        return self

    def expand(self, pcoll: PCollection) -> PCollection:
        _check_keyed(pcoll, self.label)
        a, kw = self.args, self.kwargs
        if _has_side_inputs(a, kw):
            # Side inputs are per window and known only while elements run, so the planner's
            # lifted combine (which holds the CombineFn's arguments fixed) cannot take them:
            # pre-combine in a ParDo that reads them, group the accumulators, merge and extract
            # in a second ParDo reading them too. Every CombineFn method sees the side values.
            return (
                pcoll
                | "PartialCombine" >> ParDo(_PartialCombineDoFn(self.fn), *a, **kw)
                | "GroupByKey" >> GroupByKey()
                | "FinishCombine" >> ParDo(_FinishCombineDoFn(self.fn), *a, **kw)
            )
        fn = self._runtime_checked(pcoll)
        self._graph_composite: tuple[str, Any, Mapping[str, Any]] = (
            COMBINE_PER_KEY,
            (fn, a, kw),
            GroupingParams(),
        )
        grouped = pcoll | "GroupByKey" >> GroupByKey()
        combined = grouped | "Combine" >> CombineValues(fn, *a, **kw)
        return _typed_per_key(combined, pcoll.element_type, self.fn)

    def _runtime_checked(self, pcoll: PCollection) -> CombineFn:
        """The CombineFn to run: wrapped in a type check of its inputs and results when
        ``runtime_type_check`` is on and it has hints (as Beam's TypeCheckCombineFn)."""
        from headrace.model.options import TypeOptions

        opts = pcoll.pipeline.options.view_as(TypeOptions)
        if not (opts.runtime_type_check or opts.performance_runtime_type_check):
            return self.fn
        try:
            input_hint = _combine_input_hint(self.fn)
        except TypeCheckError:  # reported by the construction-time check, when it is on
            input_hint = None
        if self._input_type_hint is not None:
            input_hint = key_value_types(self._input_type_hint)[1]
        output_hint = _combine_output_hint(self.fn)
        if self._output_type_hint is not None:
            output_hint = key_value_types(self._output_type_hint)[1]
        if input_hint is None and output_hint is None:
            return self.fn
        from headrace.model.transforms.typecheck import TypeCheckCombineFn

        label = pcoll.pipeline.current_label_prefix().rstrip("/")
        return TypeCheckCombineFn(self.fn, label, input_hint, output_hint)


def _combine_input_hint(fn: CombineFn) -> Any:
    """The type of the values a CombineFn takes, from its input hint (``None`` if it has none):
    a CombineFn's own hint, or the element type of the iterable a wrapped function takes."""
    if not isinstance(fn, CallableWrapperCombineFn):
        return main_input_hint(fn, None)
    hint = main_input_hint(fn.fn, fn.fn)
    if hint is None:
        return None
    element = iterable_element_type(hint)
    if element is None:
        raise TypeCheckError(
            "All functions for a Combine PTransform must accept a single argument compatible "
            f"with: Iterable[Any]. Instead a function with input type: {hint} was received."
        )
    return element


def _combine_output_hint(fn: CombineFn) -> Any:
    """The output hint of a CombineFn, or of the function a callable's CombineFn wraps."""
    return output_hint(fn.fn if isinstance(fn, CallableWrapperCombineFn) else fn)


def _typed_per_key(result: PCollection, input_type: Any, fn: CombineFn) -> PCollection:
    """``Tuple[K, O]`` as the element type of a per-key combine's output, when the CombineFn's
    output hint gives ``O`` (``K`` from the input's ``Tuple[K, V]``, else ``Any``)."""
    out = _combine_output_hint(fn)
    if out is not None:
        tuple_hint: Any = typing.Tuple  # noqa: UP006 - Beam's form
        result.element_type = tuple_hint[key_value_types(input_type)[0], out]
    return result


def _has_side_inputs(args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    return any(isinstance(v, AsSideInput) for v in (*args, *kwargs.values()))


class _PartialCombineDoFn(DoFn):
    """Each ``(key, value)`` into ``(key, accumulator)`` with the side values of its window.

    Like Beam's ``LiftedCombinePerKey`` (apache_beam/transforms/combiners.py), ``setup`` and
    ``teardown`` get no arguments: side values exist only per window, while elements run.
    """

    def __init__(self, fn: CombineFn) -> None:
        self.combine_fn = fn

    def setup(self) -> None:
        self.combine_fn.setup()

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any]:
        key, value = element
        fn = self.combine_fn
        acc = fn.add_input(fn.create_accumulator(*args, **kwargs), value, *args, **kwargs)
        return ((key, fn.compact(acc, *args, **kwargs)),)

    def teardown(self) -> None:
        self.combine_fn.teardown()


class _FinishCombineDoFn(DoFn):
    """``(key, [accumulators])`` into ``(key, output)``, with the side values of the window."""

    def __init__(self, fn: CombineFn) -> None:
        self.combine_fn = fn

    def setup(self) -> None:
        self.combine_fn.setup()

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any]:
        key, accumulators = element
        fn = self.combine_fn
        merged = fn.merge_accumulators(accumulators, *args, **kwargs)
        return ((key, fn.extract_output(merged, *args, **kwargs)),)

    def teardown(self) -> None:
        self.combine_fn.teardown()


class _SideInputCombineValuesDoFn(DoFn):
    """CombineValues whose arguments include side inputs: the ParDo passes their values."""

    def __init__(self, fn: CombineFn) -> None:
        self.combine_fn = fn

    def setup(self) -> None:
        self.combine_fn.setup()

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any]:
        key, values = element
        fn = self.combine_fn
        acc = fn.add_inputs(fn.create_accumulator(*args, **kwargs), values, *args, **kwargs)
        return ((key, fn.extract_output(acc, *args, **kwargs)),)

    def teardown(self) -> None:
        self.combine_fn.teardown()


class _CombineValuesDoFn(DoFn):
    def __init__(self, fn: CombineFn, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.combine_fn = fn
        self.args = args
        self.kwargs = kwargs

    def setup(self) -> None:
        self.combine_fn.setup(*self.args, **self.kwargs)

    def process(self, element: Any) -> Iterable[Any]:
        key, values = element
        fn, a, kw = self.combine_fn, self.args, self.kwargs
        acc = fn.add_inputs(fn.create_accumulator(*a, **kw), values, *a, **kw)
        return ((key, fn.extract_output(acc, *a, **kw)),)

    def teardown(self) -> None:
        self.combine_fn.teardown(*self.args, **self.kwargs)


class CombineValues(PTransform):
    """Combine the iterable value of each ``(key, values)`` element.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     out = p | Create([("a", [1, 2]), ("b", [5])]) | CombineValues(sum)
    ...     assert_that(out, equal_to([("a", 3), ("b", 5)]))
    """

    def __init__(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.fn = CombineFn.maybe_from_callable(fn)
        self.args = args
        self.kwargs = kwargs

    _checks_like_pardo = True

    def default_label(self) -> str:
        return f"CombineValues({self.fn.default_label()})"

    def _input_hint(self) -> Any:
        if self._input_type_hint is not None:
            return self._input_type_hint
        value = _combine_input_hint(self.fn)
        iterable_hint: Any = typing.Iterable
        return None if value is None else kv_of(K, iterable_hint[value])

    def expand(self, pcoll: PCollection) -> PCollection:
        if _has_side_inputs(self.args, self.kwargs):
            combined = pcoll | ParDo(
                _SideInputCombineValuesDoFn(self.fn), *self.args, **self.kwargs
            )
        else:
            combined = pcoll | ParDo(_CombineValuesDoFn(self.fn, self.args, self.kwargs))
        return _typed_per_key(combined, pcoll.element_type, self.fn)


class _InjectDefault(DoFn):
    """The combined value, or the CombineFn's result for no input.

    With side inputs the ParDo passes the CombineFn's arguments (their values) after
    ``combined``; ``setup``/``teardown`` then get none, as in the lifted combine.
    """

    def __init__(self, fn: CombineFn, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any]:
        combined, side_args = args[0], args[1:]
        side_kwargs = kwargs
        if combined:
            return combined
        fn, a, kw = self.fn, self.args, self.kwargs
        fn.setup(*a, **kw)
        try:
            a, kw = (side_args, side_kwargs) if side_args or side_kwargs else (a, kw)
            return [fn.extract_output(fn.create_accumulator(*a, **kw), *a, **kw)]
        finally:
            fn.teardown(*self.args, **self.kwargs)


class CombineGlobally(PTransform):
    """Combine all elements into one; an empty input gives the CombineFn's empty result.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     assert_that(p | Create([1, 2, 3]) | CombineGlobally(sum), equal_to([6]))
    """

    def __init__(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.fn = CombineFn.maybe_from_callable(fn)
        self.args = args
        self.kwargs = kwargs
        self.has_defaults = True
        self.as_view = False

    def default_label(self) -> str:
        return f"CombineGlobally({self.fn.default_label()})"

    def with_fanout(self, fanout: int) -> CombineGlobally:
        """Beam's hint to combine in ``fanout`` intermediate partitions first.

        headrace combines each bundle before merging (combiner lifting), so the hint changes
        nothing in the result and is accepted for compatibility.
        """
        if not isinstance(fanout, int) or isinstance(fanout, bool) or fanout < 0:
            raise ValueError(f"with_fanout needs an int >= 0, got {fanout!r}")
        return self

    def without_defaults(self) -> CombineGlobally:
        """Emit nothing for an empty input (needed outside the global window)."""
        self.has_defaults = False
        return self

    def with_defaults(self, has_defaults: bool = True) -> CombineGlobally:
        self.has_defaults = has_defaults
        return self

    def _output_hint(self) -> Any:
        if self._output_type_hint is not None or self.as_view:
            return self._output_type_hint
        return _combine_output_hint(self.fn)

    def as_singleton_view(self) -> CombineGlobally:
        """Return an AsSingleton side-input view of the result instead of a PCollection."""
        self.as_view = True
        return self

    def expand(self, pcoll: PCollection) -> Any:
        sides = _has_side_inputs(self.args, self.kwargs)
        if self.as_view and self.has_defaults and sides:
            raise NotImplementedError(
                f"{self.label!r}: as_singleton_view() needs the CombineFn's result for an empty "
                "input as the view's default, computed when the pipeline is built, but the "
                "CombineFn's arguments include side inputs, whose values exist only at run "
                "time; use .without_defaults().as_singleton_view() or combine into a "
                "PCollection and take AsSingleton of it"
            )
        if self.as_view and not pcoll.windowing.is_global:
            # A singleton view of a windowed combine: each window's result, and the CombineFn's
            # empty result for a window without data (the view's default).
            fn, a, kw = self.fn, self.args, self.kwargs
            combined = pcoll | CombineGlobally(fn, *a, **kw).without_defaults()
            if sides:  # without defaults (checked above): an empty window has no value
                return AsSingleton(combined)
            return AsSingleton(combined, default_value=_empty_result(fn, a, kw))
        if self.has_defaults and not pcoll.windowing.is_global:
            raise ValueError(
                f"{self.label!r}: default values for empty input exist only in the global window, "
                f"but the input is windowed by {pcoll.windowing.window_fn_name}; use "
                "CombineGlobally(fn).without_defaults()"
            )
        if self.has_defaults and not pcoll.is_bounded and not _default_windowing(pcoll.windowing):
            # As in Beam: logged, not refused (the combine still runs).
            _LOGGER.error(
                "%r combines elements in unbounded collections, with default values and a "
                "windowing strategy other than the default (windows %s; or a trigger, "
                "lateness or accumulation mode of its own): what an empty pane gives is "
                "ill-defined. Use CombineGlobally(fn).without_defaults() to output nothing "
                "for an empty input.",
                self.label,
                pcoll.windowing.window_fn_name,
            )
        key_with_void: PTransform = Map(_key_with_none)
        if pcoll.element_type is not None:
            key_with_void = key_with_void.with_output_types(kv_of(type(None), pcoll.element_type))
        combined = (
            pcoll
            | "KeyWithVoid" >> key_with_void
            | "CombinePerKey" >> CombinePerKey(self.fn, *self.args, **self.kwargs)
            | "UnKey" >> Map(_second)
        )
        if self.has_defaults:
            if sides:
                inject = ParDo(
                    _InjectDefault(self.fn, (), {}), AsList(combined), *self.args, **self.kwargs
                )
            else:
                inject = ParDo(_InjectDefault(self.fn, self.args, self.kwargs), AsList(combined))
            combined = pcoll.pipeline | "DoOnce" >> Impulse() | "InjectDefault" >> inject
        return AsSingleton(combined) if self.as_view else combined


def _default_windowing(w: WindowingStrategy) -> bool:
    """Global windows, the default trigger, discarding, no lateness (Beam's ``is_default``)."""
    return (
        w.window_fn is None
        and w.trigger is None
        and w.accumulation_mode == "DISCARDING"
        and w.allowed_lateness_us == 0
        and w.timestamp_combiner == "OUTPUT_AT_EOW"
    )


def _empty_result(fn: CombineFn, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    fn.setup(*args, **kwargs)
    try:
        return fn.extract_output(fn.create_accumulator(*args, **kwargs), *args, **kwargs)
    finally:
        fn.teardown(*args, **kwargs)


def _key_with_none(v: Any) -> tuple[None, Any]:
    return (None, v)


def _second(kv: Any) -> Any:
    return kv[1]


class _CreateSource(BoundedSource):
    """The values of a Create.

    Pickled (into the graph, and for worker processes) with the C pickler when that can
    reproduce them: a large list of plain values pickles several times faster than through
    cloudpickle, whose Python hook runs for every object. Values that plain pickle refuses
    (lambdas, local classes) or would store as references into ``__main__`` (which a worker
    process cannot import) go through cloudpickle as before.
    """

    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def __reduce__(self) -> tuple[Any, ...]:
        try:
            data = pickle.dumps(self.values, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # lambdas, local classes, ...: cloudpickle stores those by value
            return (_CreateSource, (self.values,))
        if b"__main__" in data:
            return (_CreateSource, (self.values,))
        return (_create_source_from_pickle, (data,))

    def split(self, desired_num_splits: int) -> list[BoundedSource]:
        n = len(self.values)
        if n == 0 or desired_num_splits <= 1:
            return [self]
        size = -(-n // desired_num_splits)
        return [_CreateSource(self.values[i : i + size]) for i in range(0, n, size)]

    def read(self) -> Iterator[Any]:
        return iter(self.values)

    def as_list(self) -> list[Any]:
        return self.values

    def estimate_size(self) -> int:
        return len(self.values)

    def display_data(self) -> dict[str, Any]:
        return {"elements": len(self.values)}


def _create_source_from_pickle(data: bytes) -> _CreateSource:
    return _CreateSource(pickle.loads(data))


class Create(PTransform):
    """A PCollection of the given in-memory values (a dict gives its items).

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     assert_that(p | Create({"a": 1}), equal_to([("a", 1)]))
    """

    def __init__(self, values: Iterable[Any], reshuffle: bool = True) -> None:
        super().__init__()
        if isinstance(values, (str, bytes)):
            raise TypeError(
                f"Create needs an iterable of elements, not a {type(values).__name__}; "
                f"wrap it in a list: Create([{values!r}])"
            )
        if isinstance(values, dict):
            values = values.items()
        self.values = list(values)

    def default_label(self) -> str:
        return "Create"

    def expand(self, pbegin: PBegin) -> PCollection:
        if not isinstance(pbegin, PBegin):
            raise TypeError(f"{self.label!r} must be applied to a pipeline, not {pbegin!r}")
        source = _CreateSource(self.values)
        # Values nothing can change (numbers, strings, tuples of them) are kept by reference:
        # pickling a large Create into the graph here took a third of a batch run. Anything
        # else is pickled now, so the pipeline reads the values as they were at this point.
        types = set(map(type, self.values))
        shared = deeply_immutable(self.values, types)
        return pbegin.pipeline._apply_primitive(
            self,
            "Read",
            [],
            payload=Payload.shared(source) if shared else source,
            element_type=_infer_type(self.values, types),
            params={"timestamped": False} if shared else None,
        )


def _infer_type(values: list[Any], types: set[type]) -> Any:
    """The one type of all ``values`` (``types``), or None (also for TimestampedValues: the
    type of the first thousand values they hold)."""
    if not values:
        return None
    if type(values[0]) is TimestampedValue:
        sample = [v.value if type(v) is TimestampedValue else v for v in values[:1000]]
        types = set(map(type, sample))
    return next(iter(types)) if len(types) == 1 else None


class Impulse(PTransform):
    """Emit a single empty-bytes element; the root of pipelines that generate their input."""

    def expand(self, pbegin: PBegin) -> PCollection:
        return pbegin.pipeline._apply_primitive(self, "Impulse", [], element_type=bytes)


class Read(PTransform):
    """Read a :class:`~headrace.model.sources.BoundedSource`.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.sources import BoundedSource
    >>> from headrace.testing.util import assert_that, equal_to
    >>> class Three(BoundedSource):
    ...     def read(self):
    ...         return iter([1, 2, 3])
    >>> with Pipeline() as p:
    ...     assert_that(p | Read(Three()), equal_to([1, 2, 3]))
    """

    def __init__(self, source: BoundedSource) -> None:
        super().__init__()
        if not isinstance(source, BoundedSource):
            raise TypeError(f"Read needs a BoundedSource, got {source!r}")
        self.source = source

    def default_label(self) -> str:
        return f"Read({self.source.default_label()})"

    def expand(self, pbegin: PBegin) -> PCollection:
        return pbegin.pipeline._apply_primitive(self, "Read", [], payload=self.source)


class Flatten(PTransform):
    """Merge several PCollections into one.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     a = p | "A" >> Create([1])
    ...     b = p | "B" >> Create([2])
    ...     assert_that((a, b) | Flatten(), equal_to([1, 2]))
    """

    def __init__(self, pipeline: Any = None, label: str | None = None) -> None:
        super().__init__(label)
        self.pipeline = pipeline

    def expand(self, pcolls: Any) -> PCollection:
        if isinstance(pcolls, PCollection):
            pcolls = (pcolls,)
        if isinstance(pcolls, dict):
            pcolls = tuple(pcolls.values())
        pcolls = tuple(pcolls)
        if pcolls:
            first = pcolls[0].windowing
            for pc in pcolls[1:]:
                if pc.windowing.window_fn != first.window_fn:
                    raise ValueError(
                        f"{self.label!r} merges PCollections with different windowing "
                        f"({first.window_fn_name} and {pc.windowing.window_fn_name}); apply the "
                        "same beam.WindowInto to every input first"
                    )
            pipeline = pcolls[0].pipeline
        else:
            pipeline = self.pipeline
        return pipeline._apply_primitive(self, "Flatten", list(pcolls))


class PartitionFn:
    """Chooses a partition for each element: override ``partition_for``."""

    def partition_for(self, element: Any, num_partitions: int, *args: Any, **kwargs: Any) -> int:
        raise NotImplementedError

    def default_label(self) -> str:
        return type(self).__name__


def _partition_index(i: Any, n: int, element: Any) -> int:
    if isinstance(i, bool) or not isinstance(i, numbers.Integral):
        raise ValueError(
            f"PartitionFn yielded a '{type(i).__name__}' when it should only yield "
            f"integers (for element {element!r})"
        )
    i = int(i)  # numpy integers too, as in Beam
    if not 0 <= i < n:
        raise ValueError(
            f"PartitionFn specified out-of-bounds partition index: {i} not in [0, "
            f"{n}) (for element {element!r})"
        )
    return i


class _PartitionDoFn(DoFn):
    def __init__(self, fn: Any, n: int) -> None:
        self.fn = fn.partition_for if isinstance(fn, PartitionFn) else fn
        self.n = n
        self.tags = [str(i) for i in range(n)]

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any]:
        i = _partition_index(self.fn(element, self.n, *args, **kwargs), self.n, element)
        return (element,) if i == 0 else (TaggedOutput(self.tags[i], element),)


class _ApplyPartitionFnFn(DoFn):
    """Beam's ``Partition.ApplyPartitionFnFn``: ``process(element, partitionfn, n, ...)``
    yields the element tagged with its partition's index as a string (apache_beam/transforms/
    core.py). headrace's own Partition uses a DoFn holding the function instead."""

    def process(
        self, element: Any, partitionfn: Any, n: int, *args: Any, **kwargs: Any
    ) -> Iterable[Any]:
        choose = partitionfn.partition_for if isinstance(partitionfn, PartitionFn) else partitionfn
        yield TaggedOutput(
            str(_partition_index(choose(element, n, *args, **kwargs), n, element)), element
        )


class Partition(PTransform):
    """Split a PCollection into ``n`` by the index ``fn(element, n)`` returns.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     evens, odds = p | Create([1, 2, 3]) | Partition(lambda x, n: x % n, 2)
    ...     assert_that(odds, equal_to([1, 3]))
    """

    ApplyPartitionFnFn = _ApplyPartitionFnFn

    def __init__(self, fn: Any, n: int, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"Partition needs a positive number of partitions, got {n!r}")
        self.fn, self.n, self.args, self.kwargs = fn, n, args, kwargs

    def default_label(self) -> str:
        return f"Partition({_fn_label(self.fn)})"

    def expand(self, pcoll: PCollection) -> DoOutputsTuple:
        dofn = _PartitionDoFn(self.fn, self.n)
        pardo = ParDo(dofn, *self.args, **self.kwargs).with_outputs(*dofn.tags[1:], main="0")
        return pcoll | "ApplyPartitionFn" >> pardo


class FinishingTriggerWarning(UserWarning):
    """A WindowInto uses a trigger that can finish (allowed, but later data is then dropped)."""


class WindowInto(PTransform):
    """Assign elements to windows (and set the trigger, lateness and accumulation mode).

    As in Beam, a grouping emits only when its trigger fires: elements that the trigger has not
    emitted when their window expires (``Repeatedly(AfterCount(10))`` over 9 elements, say) are
    dropped. ``fire_at_expiry=True`` (a headrace option; Beam Java's
    ``ClosingBehavior.FIRE_IF_NON_EMPTY``) emits them as a last pane instead.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.window import FixedWindows, TimestampedValue
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     counts = (p | Create([1, 2, 65])
    ...                 | Map(lambda t: TimestampedValue(("k", 1), t))
    ...                 | WindowInto(FixedWindows(60))
    ...                 | CombinePerKey(sum))
    ...     assert_that(counts, equal_to([("k", 2), ("k", 1)]))
    """

    def __init__(
        self,
        windowfn: Any,
        trigger: Any = None,
        accumulation_mode: Any = None,
        timestamp_combiner: Any = None,
        allowed_lateness: Any = 0,
        *,
        fire_at_expiry: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(windowfn, Windowing):
            w = windowfn
            given = None if isinstance(w.triggerfn, DefaultTrigger) else w.triggerfn
            windowfn, trigger = w.windowfn, trigger if trigger is not None else given
            accumulation_mode = accumulation_mode or w.accumulation_mode
            timestamp_combiner = timestamp_combiner or w.timestamp_combiner
            allowed_lateness = allowed_lateness or w.allowed_lateness
        if isinstance(windowfn, type) and issubclass(windowfn, WindowFn):
            raise TypeError(
                f"WindowInto needs a WindowFn instance, got the class {windowfn.__name__}"
            )
        if not isinstance(windowfn, WindowFn):
            raise TypeError(
                f"WindowInto needs a WindowFn such as FixedWindows(60), got {windowfn!r}"
            )
        self.windowfn = windowfn
        self.trigger = trigger
        self.accumulation_mode = accumulation_mode
        self.timestamp_combiner = timestamp_combiner
        self.allowed_lateness_us = to_micros(allowed_lateness)
        self.fire_at_expiry = bool(fire_at_expiry)

    def default_label(self) -> str:
        return f"WindowInto({self.windowfn!r})"

    @property
    def windowing(self) -> Windowing:
        """This transform's windowing strategy as one value (Beam's ``WindowInto.windowing``).

        >>> from headrace.model.window import FixedWindows
        >>> WindowInto(FixedWindows(60), allowed_lateness=30).windowing.allowed_lateness
        Duration(30)
        """
        return Windowing(
            self.windowfn,
            self.trigger,
            self.accumulation_mode,
            self.timestamp_combiner,
            Duration(micros=self.allowed_lateness_us),
        )

    def _strategy(self) -> WindowingStrategy:
        combiner = self.timestamp_combiner
        if combiner is None:
            combiner = TimestampCombiner.OUTPUT_AT_EOW
        mode = self.accumulation_mode
        mode_name = "DISCARDING" if mode is None else getattr(mode, "name", str(mode)).upper()
        is_global = isinstance(self.windowfn, GlobalWindows)
        return WindowingStrategy(
            window_fn=None if is_global else Payload.of(self.windowfn),
            merging=self.windowfn.is_merging(),
            trigger=None if self.trigger is None else Payload.of(self.trigger),
            accumulation_mode=mode_name,
            allowed_lateness_us=self.allowed_lateness_us,
            timestamp_combiner=getattr(combiner, "value", str(combiner)),
            window_fn_name=repr(self.windowfn),
            fire_at_expiry=self.fire_at_expiry,
        )

    def expand(self, pcoll: PCollection) -> PCollection:
        strategy = self._strategy()
        may_finish = getattr(self.trigger, "may_finish", None)
        if may_finish is not None and may_finish(self.allowed_lateness_us / 1_000_000):
            warnings.warn(
                f"{self.label!r}: the trigger {self.trigger!r} may finish; once it has fired for "
                "the last time, later elements of that window are dropped (and counted in the "
                "droppedDueToLateness metric). Wrap it in Repeatedly(...) to keep firing.",
                FinishingTriggerWarning,
                stacklevel=4,
            )
        return pcoll.pipeline._apply_primitive(
            self,
            "WindowInto",
            [pcoll],
            payload=self.windowfn,
            windowing=strategy,
            element_type=pcoll.element_type,
        )
