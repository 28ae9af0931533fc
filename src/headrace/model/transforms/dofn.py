"""DoFn and CombineFn: the user-function interfaces of ParDo and Combine.

:func:`describe_params` inspects a ``process`` method (or a plain function given to Map and
friends) once, at construction time, and records which special arguments it asks for as plain data
(``{"ts": "timestamp", "w": "window"}``), so executors never inspect user code per element.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

__all__ = [
    "CallableWrapperCombineFn",
    "CombineFn",
    "DoFn",
    "describe_params",
]


class _DoFnParam:
    """A marker used as a default argument value to request something from the runner."""

    def __init__(self, kind: str, spec: Any = None) -> None:
        self.kind = kind
        self.spec = spec

    def __repr__(self) -> str:
        name = "".join(part.capitalize() for part in self.kind.split("_"))
        return f"DoFn.{name}Param"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _DoFnParam) and (other.kind, other.spec) == (self.kind, self.spec)

    def __hash__(self) -> int:
        return hash(self.kind)


class DoFn:
    """A per-element function with a lifecycle, applied by :class:`ParDo`.

    ``process`` returns an iterable of outputs or yields them (``None`` means no output). Ask for
    extra information with default arguments: ``timestamp=DoFn.TimestampParam``,
    ``window=DoFn.WindowParam``, ``pane=DoFn.PaneInfoParam``.

    Lifecycle: ``setup`` once per instance, ``start_bundle``/``finish_bundle`` around each bundle
    (one worker's share of a stage), ``teardown`` at the end, also when the run fails.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create, ParDo
    >>> from headrace.testing.util import assert_that, equal_to
    >>> class SplitWords(DoFn):
    ...     def process(self, line):
    ...         yield from line.split()
    >>> with Pipeline() as p:
    ...     words = p | Create(["a b", "c"]) | ParDo(SplitWords())
    ...     assert_that(words, equal_to(["a", "b", "c"]))
    """

    ElementParam = _DoFnParam("element")
    TimestampParam = _DoFnParam("timestamp")
    WindowParam = _DoFnParam("window")
    PaneInfoParam = _DoFnParam("pane")
    KeyParam = _DoFnParam("key")
    SideInputParam = _DoFnParam("side_input")
    BundleFinalizerParam = _DoFnParam("bundle_finalizer")
    WatermarkEstimatorParam = _DoFnParam("watermark_estimator")
    DynamicTimerTagParam = _DoFnParam("dynamic_timer_tag")

    @staticmethod
    def SetupContextParam(
        context_manager_constructor: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> _DoFnParam:
        """A parameter whose value comes from a context manager entered at ``setup`` and
        exited at ``teardown``: ``db=DoFn.SetupContextParam(connect, args=(url,))``."""
        spec = _context_spec(context_manager_constructor, args, kwargs)
        return _DoFnParam("setup_context", spec)

    @staticmethod
    def BundleContextParam(
        context_manager_constructor: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> _DoFnParam:
        """Like :meth:`SetupContextParam`, entered and exited around each bundle."""
        return _DoFnParam(
            "bundle_context", _context_spec(context_manager_constructor, args, kwargs)
        )

    @staticmethod
    def StateParam(spec: Any) -> _DoFnParam:
        return _DoFnParam("state", spec)

    @staticmethod
    def TimerParam(spec: Any) -> _DoFnParam:
        return _DoFnParam("timer", spec)

    def setup(self) -> None:
        """Called once per DoFn instance before any bundle."""

    def start_bundle(self) -> None:
        """Called before each bundle."""

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any] | None:
        raise NotImplementedError(f"{type(self).__name__} must implement process(element)")

    def finish_bundle(self) -> Iterable[Any] | None:
        """Called after each bundle; may yield outputs (placed in the global window)."""
        return None

    def teardown(self) -> None:
        """Called once per instance at the end, also when the run failed."""

    def default_label(self) -> str:
        return type(self).__name__

    def default_type_hints(self) -> Any:
        return None

    @staticmethod
    def unbounded_per_element() -> Callable[[Any], Any]:
        def wrapper(f: Any) -> Any:
            return f

        return wrapper


def _context_spec(
    factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None
) -> tuple[Any, ...]:
    if not callable(factory):
        raise TypeError(
            f"a context parameter needs a callable that makes a context manager, got {factory!r}"
        )
    return (factory, tuple(args), tuple(sorted((kwargs or {}).items())))


def context_params(fn: Callable[..., Any]) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """Parameters of ``fn`` that ask for a Setup/BundleContextParam: name -> (kind, spec)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}
    return {
        p.name: (p.default.kind, p.default.spec)
        for p in sig.parameters.values()
        if isinstance(p.default, _DoFnParam)
        and p.default.kind in ("setup_context", "bundle_context")
    }


def describe_params(fn: Callable[..., Any], skip_first: int = 1) -> dict[str, str]:
    """Map parameter names of ``fn`` whose default is a DoFn param marker to the marker's kind."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}
    out: dict[str, str] = {}
    for i, p in enumerate(sig.parameters.values()):
        if i < skip_first:
            continue
        if i == 0 and p.default is DoFn.ElementParam:
            # ``process(self, element=DoFn.ElementParam)``: the element parameter itself, which
            # receives the element positionally anyway (Beam allows the marker there).
            continue
        if isinstance(p.default, _DoFnParam):
            out[p.name] = p.default.kind
    return out


def state_and_timer_specs(fn: Callable[..., Any]) -> dict[str, Any]:
    """Parameter names of ``fn`` that ask for user state or timers, with their specs."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}
    return {
        p.name: p.default.spec
        for p in sig.parameters.values()
        if isinstance(p.default, _DoFnParam) and p.default.kind in ("state", "timer")
    }


class CombineFn:
    """An associative, commutative aggregation in four steps.

    ``create_accumulator`` → ``add_input``(s) → ``merge_accumulators`` → ``extract_output``.
    Runners pre-aggregate per bundle before the shuffle (combiner lifting) and merge after it.

    >>> class Avg(CombineFn):
    ...     def create_accumulator(self):
    ...         return (0, 0)
    ...     def add_input(self, acc, x):
    ...         return (acc[0] + x, acc[1] + 1)
    ...     def merge_accumulators(self, accs):
    ...         sums, counts = zip(*accs)
    ...         return (sum(sums), sum(counts))
    ...     def extract_output(self, acc):
    ...         return acc[0] / acc[1] if acc[1] else float("nan")
    >>> Avg().apply([1, 2, 3, 4])
    2.5
    """

    # Executors recognise these and use specialised loops: "sum", "min", "max", "count".
    fast_path: ClassVar[str | None] = None

    def setup(self, *args: Any, **kwargs: Any) -> None:
        pass

    def create_accumulator(self, /, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement create_accumulator()")

    def add_input(
        self, mutable_accumulator: Any, element: Any, /, *args: Any, **kwargs: Any
    ) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement add_input()")

    def add_inputs(
        self, mutable_accumulator: Any, elements: Iterable[Any], /, *args: Any, **kwargs: Any
    ) -> Any:
        for element in elements:
            mutable_accumulator = self.add_input(mutable_accumulator, element, *args, **kwargs)
        return mutable_accumulator

    def merge_accumulators(self, accumulators: Iterable[Any], /, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement merge_accumulators()")

    def compact(self, accumulator: Any, /, *args: Any, **kwargs: Any) -> Any:
        return accumulator

    def extract_output(self, accumulator: Any, /, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement extract_output()")

    def teardown(self, *args: Any, **kwargs: Any) -> None:
        pass

    def apply(self, elements: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        """Combine ``elements`` in one go (handy in tests)."""
        acc = self.add_inputs(self.create_accumulator(*args, **kwargs), elements, *args, **kwargs)
        return self.extract_output(acc, *args, **kwargs)

    def for_input_type(self, input_type: Any) -> CombineFn:
        return self

    def default_label(self) -> str:
        return type(self).__name__

    @staticmethod
    def from_callable(fn: Callable[[Iterable[Any]], Any]) -> CombineFn:
        return CallableWrapperCombineFn(fn)

    @staticmethod
    def maybe_from_callable(fn: Any, has_side_inputs: bool = True) -> CombineFn:
        if isinstance(fn, CombineFn):
            return fn
        if callable(fn):
            return CallableWrapperCombineFn(fn)
        raise TypeError(f"expected a CombineFn or a callable, got {fn!r}")


_BUILTIN_FAST_PATHS: dict[Any, str] = {sum: "sum", min: "min", max: "max"}


class CallableWrapperCombineFn(CombineFn):
    """A CombineFn from a function of an iterable, such as ``sum`` or ``lambda vs: max(vs)``.

    The function must be associative and commutative: it is applied to partial results. Values
    are buffered and reduced every ``buffer_size`` inputs. ``sum``, ``min`` and ``max`` take fast
    paths in the executors.

    >>> CallableWrapperCombineFn(lambda vs: max(vs, default=0)).apply([3, 9, 4])
    9
    """

    def __init__(self, fn: Callable[..., Any], buffer_size: int = 64) -> None:
        if not callable(fn):
            raise TypeError(f"CombineFn.from_callable needs a callable, got {fn!r}")
        self._fn = fn
        self._buffer_size = buffer_size
        self.fast_path = _BUILTIN_FAST_PATHS.get(fn)  # type: ignore[misc]

    @property
    def fn(self) -> Callable[..., Any]:
        return self._fn

    def create_accumulator(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def add_input(self, mutable_accumulator: Any, element: Any, *args: Any, **kwargs: Any) -> Any:
        accumulator = mutable_accumulator
        accumulator.append(element)
        if len(accumulator) > self._buffer_size:
            accumulator[:] = [self._fn(accumulator, *args, **kwargs)]
        return accumulator

    def add_inputs(
        self, mutable_accumulator: Any, elements: Iterable[Any], *args: Any, **kwargs: Any
    ) -> Any:
        accumulator = mutable_accumulator
        accumulator.extend(elements)
        if len(accumulator) > self._buffer_size:
            accumulator[:] = [self._fn(accumulator, *args, **kwargs)]
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        merged: list[Any] = []
        for acc in accumulators:
            merged.extend(acc)
        if len(merged) > 1:
            merged = [self._fn(merged, *args, **kwargs)]
        return merged

    def compact(self, accumulator: Any, *args: Any, **kwargs: Any) -> Any:
        if len(accumulator) > 1:
            return [self._fn(accumulator, *args, **kwargs)]
        return accumulator

    def extract_output(self, accumulator: Any, *args: Any, **kwargs: Any) -> Any:
        return self._fn(accumulator, *args, **kwargs)

    def default_label(self) -> str:
        return getattr(self._fn, "__name__", type(self._fn).__name__)
