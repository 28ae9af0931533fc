"""Error handlers: Beam's dead-letter pattern as a context (``ErrorHandler``).

::

    with ErrorHandler(WriteBadRecords()) as handler:
        good = pcoll | Map(parse).with_error_handler(handler)
    bad_written = handler.output()

A transform given a handler sends its error records to it (``add_error_pcollection``) instead of
failing or returning them; when the ``with`` block ends the handler flattens every error
PCollection it got and applies its consumer transform once. A handler that was never closed
makes ``Pipeline.run`` fail, so errors cannot be dropped silently. Semantics follow Beam's
apache_beam/transforms/error_handling.py; :class:`CollectingErrorHandler` additionally insists
that its output is read.
"""

from __future__ import annotations

import traceback
from typing import Any

from headrace.model.pvalue import PCollection
from headrace.model.transforms.core import Flatten
from headrace.model.transforms.ptransform import PTransform

__all__ = ["CollectingErrorHandler", "ErrorHandler"]


def _caller() -> str:
    """Where the handler was made (file, line), for the unclosed-handler error."""
    frames = traceback.extract_stack()[:-3]
    if not frames:
        return "<unknown>"
    f = frames[-1]
    return f"{f.filename}:{f.lineno}"


class ErrorHandler:
    """Collect error PCollections from transforms and apply ``consumer`` to all of them.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create, Map
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     with ErrorHandler(Map(lambda bad: bad[0])) as handler:
    ...         good = p | Create([1, 0, 2]) | Map(lambda x: 10 // x).with_error_handler(handler)
    ...     assert_that(good, equal_to([10, 5]), label="Good")
    ...     assert_that(handler.output(), equal_to([0]), label="Bad")
    """

    def __init__(self, consumer: PTransform) -> None:
        if not isinstance(consumer, PTransform):
            raise TypeError(f"ErrorHandler needs a PTransform to consume errors, got {consumer!r}")
        self._consumer = consumer
        self._created_at = _caller()
        self._error_pcolls: list[PCollection] = []
        self._closed = False
        self._output: Any = None

    def __enter__(self) -> ErrorHandler:
        self._error_pcolls = []
        self._closed = False
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()

    def add_error_pcollection(self, pcoll: PCollection) -> None:
        """Called by a transform with a PCollection of its error records."""
        if self._closed:
            raise RuntimeError(
                f"error handler made at {self._created_at} is already closed; add error "
                "PCollections inside its `with` block"
            )
        pcoll.pipeline._register_error_handler(self)
        self._error_pcolls.append(pcoll)

    def close(self) -> None:
        """No more errors will be added: apply the consumer to all of them, flattened."""
        if not self._error_pcolls:
            raise ValueError(
                f"error handler made at {self._created_at} was closed without any error "
                "PCollection; give it to a transform (.with_error_handler(handler)) inside "
                "its `with` block"
            )
        errors = tuple(self._error_pcolls) | Flatten()
        self._output = self._consume(errors)
        self._closed = True

    def _consume(self, errors: PCollection) -> Any:
        return errors | self._consumer

    def output(self) -> Any:
        """What the consumer returned; only after the handler is closed."""
        if not self._closed:
            raise RuntimeError(
                "Cannot access the output of an error handler until it has been closed "
                "(leave its `with` block first)."
            )
        return self._output

    def verify_closed(self) -> None:
        """Called when the pipeline runs: an unclosed handler would lose errors."""
        if not self._closed:
            raise RuntimeError(
                f"Unclosed error handler initialized at {self._created_at}: use it as "
                "`with ErrorHandler(...) as handler:` or call handler.close()"
            )


class CollectingErrorHandler(ErrorHandler):
    """An ErrorHandler whose output is the flattened errors; reading it is required.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create, Map
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     with CollectingErrorHandler() as handler:
    ...         _ = p | Create(["1", "x"]) | Map(int).with_error_handler(handler)
    ...     assert_that(handler.output() | Map(lambda bad: bad[0]), equal_to(["x"]))
    """

    def __init__(self) -> None:
        super().__init__(Flatten())  # not applied: the flattened errors are the output
        self._created_at = _caller()
        self._output_read = False

    def _consume(self, errors: PCollection) -> Any:
        return errors

    def output(self) -> Any:
        self._output_read = True
        return super().output()

    def verify_closed(self) -> None:
        if not self._output_read:
            raise RuntimeError(
                "CollectingErrorHandler requires the output to be retrieved "
                f"(handler.output()); initialized at {self._created_at}"
            )
        super().verify_closed()
