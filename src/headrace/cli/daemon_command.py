"""The ``daemon`` command of ``headrace``: run stages whenever their inputs change or their cron
inputs tick, until SIGINT or SIGTERM.

The daemon's passes are :class:`headrace.stages.daemon.Daemon` steps; this module owns the
process around them: the pass loop, the timestamped log lines on stdout, and the signals. A
first SIGINT/SIGTERM stops the daemon after the running pass (at once when idle), a second one
interrupts the running job. Jobs fork worker processes, so no thread is started here.

Options and exit statuses follow :mod:`headrace.cli.stage_common`. :func:`register` adds the
command to the ``headrace`` application; the stage layer is imported only when it runs.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import FrameType
from typing import Annotated, Any

import typer

from headrace.cli.common import DbOpt, HomeOpt, ObjectsOpt, fail
from headrace.cli.stage_common import opened_catalog

__all__ = ["daemon_command", "register"]


def _log(message: str) -> None:
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    sys.stdout.write(f"{stamp} {message}\n")
    sys.stdout.flush()


class _Stopper:
    """SIGINT/SIGTERM handling of the daemon: a first signal stops it after the running pass
    (at once when idle), a second one interrupts the running job."""

    def __init__(self) -> None:
        self.requested = False
        self.in_pass = False
        self._pid = os.getpid()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked worker: behave as if no handler were set
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.requested and self.in_pass:
            raise KeyboardInterrupt
        self.requested = True
        if self.in_pass:
            name = signal.Signals(signum).name
            # os.write: printing from a signal handler could re-enter the stdout buffer
            _raw(f"{name}: stopping after the running job; send it again to stop that job now\n")

    @contextmanager
    def installed(self) -> Iterator[None]:
        saved = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.requested:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))


def _raw(text: str) -> None:
    try:
        os.write(sys.stdout.fileno(), text.encode())
    except (OSError, ValueError, AttributeError):  # no file descriptor (captured output)
        pass


def daemon_command(
    poll: Annotated[
        float,
        typer.Option(
            "--poll",
            min=0.05,
            metavar="SECONDS",
            help="Look for new input commits and due cron ticks this often.",
        ),
    ] = 1.0,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help=(
                "Run until every stage is up to date, then exit (exit status 1 if a job did "
                "not end SUCCESS)."
            ),
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            metavar="N",
            help=(
                "Run up to N jobs of different stages at once, each in a process of its own "
                "(default 1: one job at a time, in the daemon's process)."
            ),
        ),
    ] = 1,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help=(
                "Run every job's datums as Ray tasks on the Ray cluster at ADDRESS (needs "
                "pip install 'headrace[ray]' and a store every node reaches)."
            ),
        ),
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    from headrace.stages.catalog import SUCCESS
    from headrace.stages.daemon import Daemon, DaemonBusy
    from headrace.stages.raypool import RAY_ADDRESS_ENV

    if ray:
        os.environ[RAY_ADDRESS_ENV] = ray  # read by each job, also in job processes

    with opened_catalog(home, db, objects) as catalog:
        daemon = Daemon(catalog, poll=poll, log=_log, max_jobs=jobs)
        try:
            if once:
                try:
                    ended = daemon.run_until_idle()
                except DaemonBusy as e:
                    fail(str(e))
                bad = [j for j in ended if j.state != SUCCESS]
                if bad:
                    fail(
                        f"{len(bad)} job(s) did not end SUCCESS: "
                        + ", ".join(f"{j.id} of stage {j.stage} ({j.state})" for j in bad)
                    )
                return
            _serve(daemon, poll)
        finally:
            daemon.close()


def _serve(daemon: Any, poll: float) -> None:
    """Step ``daemon`` every ``poll`` seconds until SIGINT or SIGTERM."""
    from headrace.stages.daemon import DaemonBusy

    stopper = _Stopper()
    with stopper.installed():
        _log(f"daemon started (pid {os.getpid()}, a pass every {poll:g} s); stop it with "
             "Ctrl-C or SIGTERM")  # fmt: skip
        while not stopper.requested:
            started = time.monotonic()
            stopper.in_pass = True
            try:
                daemon.step()
            except DaemonBusy as e:
                fail(str(e))
            except KeyboardInterrupt:
                _log("interrupted in the middle of a pass; the running job ended as recorded")
                break
            except Exception as e:  # a pass that fails is logged; the next one may succeed
                _log(f"pass failed: {type(e).__name__}: {e}")
            finally:
                stopper.in_pass = False
            stopper.sleep(max(0.0, poll - (time.monotonic() - started)))
        if daemon.running:
            _log(
                f"waiting for {daemon.running} running job(s) to end; send the signal again "
                "to stop them now (a daemon started later resumes them)"
            )
            stopper.in_pass = True
            try:
                daemon.drain()
            except KeyboardInterrupt:
                daemon.stop_jobs()
                _log("stopped the running jobs")
            finally:
                stopper.in_pass = False
        _log("daemon stopped")


def register(app: typer.Typer) -> None:
    """Add the ``daemon`` command to ``app``."""
    app.command(
        "daemon",
        help=(
            "Run stages when their inputs change: every --poll seconds, resume jobs whose "
            "process died, tick due cron inputs, and run each stage whose input heads or spec "
            "version differ from its last job's, upstream stages first (a failed job makes the "
            "jobs downstream of it UNRUNNABLE). Logs one timestamped line per event on stdout. "
            "Ctrl-C or SIGTERM stops it (exit status 0) after the running job; a second one "
            "interrupts that job."
        ),
    )(daemon_command)
