"""Streaming a process's pipeline runs to a job service, and obeying its cancel requests.

:class:`ServiceReporter` is a run-event listener (:mod:`headrace.runners.events`). It queues
each event as JSON (:mod:`headrace.service.wire`) and a background thread posts the queue to
``<service>/api/v1/runs/events`` every ``interval`` seconds, and at once when a run finishes.
While a run of this process is unfinished the thread posts even an empty batch, so that the
reply, which names the runs whose cancel (or drain) was requested, reaches it within
``interval``; it then cancels (or drains) them through their result handle. A service that
cannot be reached is reported once on the ``headrace.service`` logger and the events are
dropped, never failing the run.

:func:`report_to` gives each service URL one reporter per process, listening from then on and
flushed when the process exits: ``Pipeline.run`` calls it for ``--service URL`` or
``$HEADRACE_SERVICE`` (a plain ``python script.py``), and ``headrace run --service`` through
the same function, so a run is never reported twice.

This module uses only the standard library, so a pipeline process needs no web framework.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from headrace.runners.events import (
    RunEvent,
    RunFinished,
    RunSubmitted,
    add_listener,
    remove_listener,
)
from headrace.service.wire import encode_event

__all__ = ["ServiceReporter", "ServiceUnavailable", "release", "report_to"]

_log = logging.getLogger("headrace.service")


class ServiceUnavailable(RuntimeError):
    """The service did not answer, or refused the events."""


class ServiceReporter:
    """Posts run events to ``url`` (the service's root, e.g. ``http://127.0.0.1:8080``).

    ``on_cancel(run_id)`` is called before a run is cancelled at the service's request.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        interval: float = 0.5,
        timeout: float = 10.0,
        on_cancel: Callable[[str], None] | None = None,
    ) -> None:
        self.on_cancel = on_cancel
        self.url = url.rstrip("/") + "/api/v1/runs/events"
        self.token = token
        self.interval = interval
        self.timeout = timeout
        self.source = f"{socket.gethostname()}:{os.getpid()}"
        self._queue: list[dict[str, Any]] = []
        self._results: dict[str, Any] = {}  # unfinished runs of this process: id -> handle
        self._cancelled: set[str] = set()
        self._drained: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._failed = False
        self._post_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="headrace-service", daemon=True)
        self._thread.start()

    def __call__(self, event: RunEvent) -> None:
        with self._lock:
            if isinstance(event, RunSubmitted) and event.result is not None:
                self._results[event.run_id] = event.result
            elif isinstance(event, RunFinished):
                self._results.pop(event.run_id, None)
            self._queue.append(encode_event(event))
        if isinstance(event, RunFinished):
            self._wake.set()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Post what is queued (or an empty batch while a run is unfinished)."""
        with self._post_lock:
            with self._lock:
                batch, self._queue = self._queue, []
                active = bool(self._results)
            if not batch and not active:
                return
            try:
                reply = self._post({"source": self.source, "events": batch})
            except ServiceUnavailable as e:
                if not self._failed:
                    _log.warning("headrace: cannot report runs to %s: %s", self.url, e)
                    self._failed = True
                return
            self._failed = False
            for run_id in reply.get("cancel", []):
                self._cancel(run_id)
            for run_id in reply.get("drain", []):
                self._drain(run_id)

    def _cancel(self, run_id: str) -> None:
        with self._lock:
            result = self._results.get(run_id)
            if result is None or run_id in self._cancelled:
                return
            self._cancelled.add(run_id)
        _log.info("headrace: run %s cancelled from the job service", run_id)
        if self.on_cancel is not None:
            self.on_cancel(run_id)
        result.cancel()

    def _drain(self, run_id: str) -> None:
        with self._lock:
            result = self._results.get(run_id)
            if result is None or run_id in self._drained:
                return
            self._drained.add(run_id)
        _log.info("headrace: run %s drained from the job service", run_id)
        try:
            result.drain()
        except (AttributeError, ValueError) as e:  # a runner without drain, a batch run
            _log.warning("headrace: cannot drain run %s: %s", run_id, e)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        request = urllib.request.Request(self.url, data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply: dict[str, Any] = json.loads(response.read() or b"{}")
                return reply
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:500]
            raise ServiceUnavailable(f"HTTP {e.code}: {detail}") from None
        except (OSError, ValueError) as e:
            raise ServiceUnavailable(str(e)) from None

    def close(self) -> None:
        """Post what is left and stop the thread."""
        self._closed = True
        self._wake.set()
        self._thread.join(self.timeout)
        self.flush()


_reporters: dict[str, ServiceReporter] = {}
_reporters_lock = threading.Lock()


def _key(url: str) -> str:
    return url.rstrip("/")


def report_to(
    url: str, token: str | None = None, on_cancel: Callable[[str], None] | None = None
) -> ServiceReporter:
    """The reporter of this process for ``url``, made and registered as a run-event listener
    on first use (later calls get the same one; ``on_cancel`` is set only by the first)."""
    with _reporters_lock:
        reporter = _reporters.get(_key(url))
        if reporter is None:
            reporter = ServiceReporter(url, token, on_cancel=on_cancel)
            _reporters[_key(url)] = reporter
            add_listener(reporter)
        return reporter


def release(reporter: ServiceReporter) -> None:
    """Stop ``reporter`` listening, post what it holds and forget it."""
    with _reporters_lock:
        for key, value in list(_reporters.items()):
            if value is reporter:
                del _reporters[key]
    remove_listener(reporter)
    reporter.close()


@atexit.register
def _flush_at_exit() -> None:
    for reporter in list(_reporters.values()):
        release(reporter)
