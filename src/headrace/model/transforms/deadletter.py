"""Dead-letter outputs: ``ParDo/Map/FlatMap(...).with_exception_handling()``.

The wrapped DoFn's exceptions (of ``exc_class``) do not fail the pipeline: the failing input goes
to a second output as ``(element, (exception type, repr(exception), traceback lines))``, Beam's
layout (``_ExceptionHandlingWrapperDoFn`` in apache_beam/transforms/core.py). Without
``partial=True`` an element's outputs are buffered until it succeeds, so a failing element emits
nothing to the good output. ``threshold`` fails the pipeline when the share of bad inputs (per
window) exceeds it. ``timeout`` and ``use_subprocess`` run the DoFn under a time limit or in a
child process (:mod:`headrace.model.transforms.isolated`): an overrun or a hard crash becomes a
dead letter too.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from headrace.model.pvalue import PCollection, TaggedOutput
from headrace.model.transforms.core import CombineGlobally, Map, ParDo
from headrace.model.transforms.dofn import DoFn, state_and_timer_specs
from headrace.model.transforms.isolated import SubprocessDoFn, TimeoutDoFn
from headrace.model.transforms.ptransform import PTransform

__all__ = ["DeadLetter", "ExceptionHandlingParDo"]

_LOG = logging.getLogger(__name__)


class DeadLetter:
    """Type hint of a dead-letter element: ``DeadLetter[T]`` is ``Tuple[T, Any]``."""

    def __class_getitem__(cls, element_type: Any) -> Any:
        return tuple[element_type, Any]


class _ExceptionHandlingDoFn(DoFn):
    """Runs the wrapped DoFn's ``process``; a raised exception becomes a dead-letter output."""

    def __init__(
        self,
        fn: DoFn,
        dead_letter_tag: str,
        exc_class: Any,
        partial: bool,
        on_failure_callback: Callable[[BaseException, Any], None] | None,
    ) -> None:
        self.fn = fn
        self.dead_letter_tag = dead_letter_tag
        self.exc_class = exc_class
        self.partial = partial
        self.on_failure_callback = on_failure_callback

    def setup(self) -> None:
        self.fn.setup()

    def start_bundle(self) -> None:
        self.fn.start_bundle()

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any]:
        try:
            result = self.fn.process(element, *args, **kwargs)
            if result is None:
                return
            if not self.partial:
                result = list(result)
            yield from result
        except self.exc_class as exn:
            if self.on_failure_callback is not None:
                try:
                    self.on_failure_callback(exn, element)
                except Exception as callback_error:  # Beam logs it and goes on, as here
                    _LOG.warning("on_failure_callback failed: %r", callback_error, exc_info=True)
            info = (type(exn), repr(exn), traceback.format_exception(*sys.exc_info()))
            yield TaggedOutput(self.dead_letter_tag, (element, info))

    def finish_bundle(self) -> Iterable[Any] | None:
        return self.fn.finish_bundle()

    def teardown(self) -> None:
        self.fn.teardown()

    def default_label(self) -> str:
        return self.fn.default_label()


class _CheckThreshold(DoFn):
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def process(self, bad: int, total: int, window: Any = DoFn.WindowParam) -> Iterable[Any]:
        if bad > total * self.threshold:
            raise ValueError(
                f"the number of failing elements within the window {window!r} exceeded the "
                f"threshold: {bad} / {total} = {bad / total} > {self.threshold}"
            )
        return ()


class ExceptionHandlingParDo(PTransform):
    """What ``ParDo(...).with_exception_handling()`` returns: good and bad outputs.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     good, bad = (p | Create([1, 0, 2])
    ...                    | Map(lambda x: 10 // x).with_exception_handling())
    ...     assert_that(good, equal_to([10, 5]), label="Good")
    ...     assert_that(bad | Map(lambda b: (b[0], b[1][0].__name__)),
    ...                 equal_to([(0, "ZeroDivisionError")]), label="Bad")
    """

    def __init__(
        self,
        pardo: ParDo,
        main_tag: str,
        dead_letter_tag: str,
        extra_tags: tuple[str, ...],
        exc_class: Any,
        partial: bool,
        threshold: float,
        threshold_windowing: Any,
        on_failure_callback: Callable[[BaseException, Any], None] | None,
        error_handler: Any = None,
        *,
        use_subprocess: bool = False,
        timeout: float | None = None,
    ) -> None:
        super().__init__(pardo._label)
        self.error_handler = error_handler
        self.use_subprocess = use_subprocess
        self.timeout = timeout
        self.pardo = pardo
        self.main_tag = main_tag
        self.dead_letter_tag = dead_letter_tag
        self.extra_tags = extra_tags
        self.exc_class = exc_class
        self.partial = partial
        self.threshold = threshold
        self.threshold_windowing = threshold_windowing
        self.on_failure_callback = on_failure_callback

    def default_label(self) -> str:
        return self.pardo.default_label()

    def with_outputs(self, *tags: str, main: str | None = None) -> ExceptionHandlingParDo:
        """Declare the wrapped DoFn's own additional outputs (Beam allows it here too)."""
        self.extra_tags = tuple(tags)
        if main is not None:
            self.main_tag = main
        return self

    def expand(self, pcoll: PCollection) -> Any:
        inner = self.pardo
        if state_and_timer_specs(inner._process_callable()):
            raise NotImplementedError(
                f"{self.label!r}: with_exception_handling() on a DoFn with state or timers is "
                "not supported (a failed element's state writes could not be undone)"
            )
        fn: DoFn = inner.fn
        if self.use_subprocess:
            fn = SubprocessDoFn(fn, self.timeout)
        elif self.timeout is not None:
            fn = TimeoutDoFn(fn, self.timeout)
        wrapper = _ExceptionHandlingDoFn(
            fn, self.dead_letter_tag, self.exc_class, self.partial, self.on_failure_callback
        )
        pardo = _WrappedParDo(wrapper, inner, *inner.args, **inner.kwargs)
        tags = (*self.extra_tags, self.dead_letter_tag)
        result = pcoll | pardo.with_outputs(*tags, main=self.main_tag, allow_unknown_tags=True)
        if self.threshold < 1.0:
            self._check_threshold(pcoll, result[self.dead_letter_tag])
        if self.error_handler is not None:
            # Beam: the handler consumes the dead letters; the main output alone is returned
            # unless the DoFn declared outputs of its own.
            self.error_handler.add_error_pcollection(result[self.dead_letter_tag])
            if not self.extra_tags:
                return result[self.main_tag]
        return result

    def _check_threshold(self, pcoll: PCollection, bad: PCollection) -> None:
        from headrace.model.transforms.core import WindowInto

        def windowed(pc: PCollection, label: str) -> PCollection:
            if self.threshold_windowing is None:
                return pc
            return pc | f"{label}Window" >> WindowInto(self.threshold_windowing)

        total = (
            windowed(pcoll, "Total")
            | "CountTotalOnes" >> Map(_one)
            | "CountTotal" >> CombineGlobally(sum).as_singleton_view()
        )
        bad_count = (
            windowed(bad, "Bad")
            | "CountBadOnes" >> Map(_one)
            | "CountBad" >> CombineGlobally(sum).without_defaults()
        )
        _ = bad_count | "CheckThreshold" >> ParDo(_CheckThreshold(self.threshold), total)


def _one(_: Any) -> int:
    return 1


class _WrappedParDo(ParDo):
    """The inner ParDo: DoFn parameters are read from the wrapped ``process``."""

    def __init__(self, wrapper: DoFn, inner: ParDo, *args: Any, **kwargs: Any) -> None:
        super().__init__(wrapper, *args, **kwargs)
        self._inner = inner

    def default_label(self) -> str:
        return self._inner.default_label()

    def _process_callable(self) -> Callable[..., Any]:
        return self._inner._process_callable()


def with_exception_handling(
    pardo: ParDo,
    main_tag: str | None = None,
    dead_letter_tag: str = "bad",
    *,
    exc_class: Any = Exception,
    partial: bool = False,
    use_subprocess: bool = False,
    threshold: float = 1,
    threshold_windowing: Any = None,
    timeout: float | None = None,
    error_handler: Any = None,
    on_failure_callback: Callable[[BaseException, Any], None] | None = None,
    allow_unsafe_userstate_in_process: bool = False,
) -> ExceptionHandlingParDo:
    """Build the transform behind ``ParDo.with_exception_handling`` (see the module doc)."""
    label = pardo.label
    unsupported = {
        "allow_unsafe_userstate_in_process": allow_unsafe_userstate_in_process,
    }
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ValueError(f"{label!r}: with_exception_handling(timeout=...) needs seconds > 0")
    for name, value in unsupported.items():
        if value:
            raise NotImplementedError(
                f"{label!r}: with_exception_handling({name}=...) is not supported by headrace "
                "yet; remove it (bad elements still go to the dead-letter output)"
            )
    if main_tag is None:
        main_tag = (pardo._main_tag or "good") if pardo._main_declared else "good"
    return ExceptionHandlingParDo(
        pardo,
        main_tag,
        dead_letter_tag,
        tuple(pardo._tags),
        exc_class,
        partial,
        threshold,
        threshold_windowing,
        on_failure_callback,
        error_handler,
        use_subprocess=use_subprocess,
        timeout=timeout,
    )
