"""``DoFn.SetupContextParam`` / ``BundleContextParam``: context managers whose entered values
are passed to ``process`` (Beam's ``_ContextParam`` in apache_beam/transforms/core.py).

A setup context is entered once per DoFn instance (at ``setup``) and exited at ``teardown``; a
bundle context around each bundle. The ParDo runs a :class:`ContextParamsDoFn` that wraps the
user's DoFn and adds the values as keyword arguments.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from headrace.model.transforms.dofn import DoFn

__all__ = ["ContextParamsDoFn"]


class ContextParamsDoFn(DoFn):
    """Wraps ``fn``: enters its context parameters and passes their values by name."""

    def __init__(self, fn: DoFn, contexts: dict[str, tuple[str, tuple[Any, ...]]]) -> None:
        self.fn = fn
        self.contexts = contexts
        self._setup_stack: contextlib.ExitStack | None = None
        self._bundle_stack: contextlib.ExitStack | None = None
        self._values: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_setup_stack=None, _bundle_stack=None, _values={})
        return state

    def _enter(self, stack: contextlib.ExitStack, kind: str) -> None:
        for name, (k, (factory, args, kwargs)) in self.contexts.items():
            if k == kind:
                self._values[name] = stack.enter_context(factory(*args, **dict(kwargs)))

    def setup(self) -> None:
        self.fn.setup()
        self._setup_stack = contextlib.ExitStack()
        self._enter(self._setup_stack, "setup_context")

    def start_bundle(self) -> None:
        if self._setup_stack is None:  # a runner that skipped setup()
            self.setup()
        self._bundle_stack = contextlib.ExitStack()
        self._enter(self._bundle_stack, "bundle_context")
        self.fn.start_bundle()

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any] | None:
        return self.fn.process(element, *args, **kwargs, **self._values)

    def finish_bundle(self) -> Iterable[Any] | None:
        try:
            out = self.fn.finish_bundle()
            return list(out) if out is not None else None
        finally:
            if self._bundle_stack is not None:
                self._bundle_stack.close()
                self._bundle_stack = None

    def teardown(self) -> None:
        try:
            self.fn.teardown()
        finally:
            if self._setup_stack is not None:
                self._setup_stack.close()
                self._setup_stack = None

    def default_label(self) -> str:
        return self.fn.default_label()
