"""Tests of ``headrace.exec`` drive operators directly, in the test's own thread: an operator
makes its metrics container current while it processes (a task resets it when it ends), so each
test here resets it afterwards too, and no later test sees a leftover container."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from headrace.model.metrics import set_current_container


@pytest.fixture(autouse=True)
def _no_metrics_container_left() -> Iterator[None]:
    yield
    set_current_container(None)
