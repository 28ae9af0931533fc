"""Small composites Beam programs use inline: ``FlattenWith``, ``Tee``, ``LogElements``,
``Reify`` and ``WaitOn`` (Beam's apache_beam/transforms/core.py and util.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from headrace.model.pvalue import AsList, PCollection
from headrace.model.transforms.core import FlatMap, Flatten, GroupByKey, Map, ParDo
from headrace.model.transforms.dofn import DoFn
from headrace.model.transforms.ptransform import PTransform, ptransform_fn
from headrace.model.window import TimestampedValue

__all__ = ["FlattenWith", "LogElements", "Reify", "Tee", "WaitOn"]

_LOG = logging.getLogger("headrace.beam.LogElements")


class FlattenWith(PTransform):
    """Flatten the input with other PCollections, or the outputs of root transforms.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     out = p | "A" >> Create([1]) | FlattenWith(Create([2]))
    ...     assert_that(out, equal_to([1, 2]))
    """

    def __init__(self, *others: Any) -> None:
        super().__init__()
        self._others = others

    def expand(self, pcoll: PCollection) -> PCollection:
        pcolls = [pcoll]
        for i, other in enumerate(self._others):
            if isinstance(other, PCollection):
                pcolls.append(other)
            elif isinstance(other, PTransform):
                pcolls.append(pcoll.pipeline | f"Other{i}" >> other)
            else:
                raise TypeError(
                    f"{self.label!r}: FlattenWith takes PCollections and root PTransforms, "
                    f"got {other!r}"
                )
        return tuple(pcolls) | Flatten()


class Tee(PTransform):
    """Apply each consumer (a transform or a function of the PCollection) to the input and
    return the input unchanged.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     out = p | Create([1]) | Tee(lambda pc: assert_that(pc, equal_to([1]), "Side"))
    ...     assert_that(out, equal_to([1]))
    """

    def __init__(self, *consumers: PTransform | Callable[[PCollection], Any]) -> None:
        super().__init__()
        self._consumers = consumers

    def expand(self, pcoll: PCollection) -> PCollection:
        for i, consumer in enumerate(self._consumers):
            if isinstance(consumer, PTransform):
                _ = pcoll | consumer
            elif callable(consumer):
                _ = pcoll | f"Tee{i}" >> ptransform_fn(consumer)()
            else:
                raise TypeError(
                    f"{self.label!r}: Tee takes transforms or functions, got {consumer!r}"
                )
        return pcoll


class _LoggingFn(DoFn):
    def __init__(
        self,
        prefix: str,
        with_timestamp: bool,
        with_window: bool,
        level: int | None,
        with_pane_info: bool,
        use_epoch_time: bool,
    ) -> None:
        self.prefix = prefix
        self.with_timestamp = with_timestamp
        self.with_window = with_window
        self.level = level
        self.with_pane_info = with_pane_info
        self.use_epoch_time = use_epoch_time

    def _ts(self, ts: Any) -> Any:
        return ts.seconds() if self.use_epoch_time else ts.to_rfc3339()

    def process(
        self,
        element: Any,
        timestamp: Any = DoFn.TimestampParam,
        window: Any = DoFn.WindowParam,
        pane_info: Any = DoFn.PaneInfoParam,
    ) -> Iterator[Any]:
        line = self.prefix + str(element)
        if self.with_timestamp:
            line += ", timestamp=" + repr(self._ts(timestamp))
        if self.with_window:
            line += f", window(start={self._ts(window.start)}, end={self._ts(window.end)})"
        if self.with_pane_info:
            line += ", pane_info=" + repr(pane_info)
        if self.level is None:
            print(line)
        else:
            _LOG.log(self.level, line)
        yield element


class LogElements(PTransform):
    """Print (or log at ``level``) each element, optionally with its timestamp, window and
    pane, and pass it on.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> with Pipeline() as p:
    ...     _ = p | Create(["a"]) | LogElements(prefix="got ")
    got a
    """

    def __init__(
        self,
        label: str | None = None,
        prefix: str = "",
        with_timestamp: bool = False,
        with_window: bool = False,
        level: int | None = None,
        with_pane_info: bool = False,
        use_epoch_time: bool = False,
    ) -> None:
        super().__init__(label)
        self.fn = _LoggingFn(
            prefix, with_timestamp, with_window, level, with_pane_info, use_epoch_time
        )

    def expand(self, pcoll: PCollection) -> PCollection:
        return pcoll | ParDo(self.fn)


def _timestamp_info(element: Any, timestamp: Any = DoFn.TimestampParam) -> Iterator[Any]:
    yield TimestampedValue(element, timestamp)


def _window_info(
    element: Any, timestamp: Any = DoFn.TimestampParam, window: Any = DoFn.WindowParam
) -> Iterator[Any]:
    yield TimestampedValue((element, timestamp, window), timestamp)


def _timestamp_in_value(element: Any, timestamp: Any = DoFn.TimestampParam) -> Iterator[Any]:
    key, value = element
    yield (key, TimestampedValue(value, timestamp))


def _window_in_value(
    element: Any, timestamp: Any = DoFn.TimestampParam, window: Any = DoFn.WindowParam
) -> Iterator[Any]:
    key, value = element
    yield TimestampedValue((key, (value, timestamp, window)), timestamp)


class _ReifyBase(PTransform):
    _fn: Callable[..., Iterator[Any]]

    def expand(self, pcoll: PCollection) -> PCollection:
        return pcoll | FlatMap(type(self)._fn)


class Reify:
    """Make an element's timestamp or window explicit in its value (as in Beam, an emitted
    ``TimestampedValue`` sets the output's timestamp, so ``Reify.Timestamp`` keeps elements as
    they are).

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     out = p | Create([1]) | Map(lambda x: TimestampedValue(x, 5)) | Reify.Window()
    ...     assert_that(out | Map(lambda v: (v[0], float(v[1]))), equal_to([(1, 5.0)]))
    """

    class Timestamp(_ReifyBase):
        """Each element becomes ``TimestampedValue(element, its timestamp)``."""

        _fn = staticmethod(_timestamp_info)

    class Window(_ReifyBase):
        """Each element becomes ``(element, timestamp, window)`` (keeping its timestamp)."""

        _fn = staticmethod(_window_info)

    class TimestampInValue(_ReifyBase):
        """``(key, value)`` becomes ``(key, TimestampedValue(value, timestamp))``."""

        _fn = staticmethod(_timestamp_in_value)

    class WindowInValue(_ReifyBase):
        """``(key, value)`` becomes ``(key, (value, timestamp, window))``."""

        _fn = staticmethod(_window_in_value)


def _nothing(_: Any) -> list[Any]:
    return []


def _pass_after(element: Any, *sides: Any) -> Any:
    return element


class WaitOn(PTransform):
    """Pass the input on only once the given PCollections are complete (a barrier).

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     written = p | "Write" >> Create([1, 2])
    ...     out = p | "Main" >> Create(["a"]) | WaitOn(written)
    ...     assert_that(out, equal_to(["a"]))
    """

    def __init__(self, *to_be_waited_on: PCollection) -> None:
        super().__init__()
        self._to_be_waited_on = to_be_waited_on

    def expand(self, pcoll: PCollection) -> PCollection:
        sides = [
            AsList(
                side
                | f"WaitOn{i}Drop" >> FlatMap(_nothing)
                | f"WaitOn{i}Key" >> Map(lambda x: (None, x))
                | f"WaitOn{i}" >> GroupByKey()
            )
            for i, side in enumerate(self._to_be_waited_on)
        ]
        return pcoll | "Wait" >> Map(_pass_after, *sides)
