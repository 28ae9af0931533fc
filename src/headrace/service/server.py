"""Running the job service: uvicorn serving :func:`headrace.service.app.create_app`, and the
stage daemon beside it.

The daemon runs as a child process (``headrace daemon`` with the same store options): stage
jobs fork worker processes, which is unsafe from a process running the server's threads. It is
stopped with SIGTERM when the server stops (it finishes or interrupts its running job as
``headrace daemon`` does), and killed if it has not exited after ``DAEMON_STOP_S``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

import uvicorn

from headrace.service.app import create_app
from headrace.service.config import ServiceConfig, check_bind

__all__ = ["DAEMON_STOP_S", "serve", "start_daemon"]

DAEMON_STOP_S = 30.0
GRACEFUL_S = 3  # seconds a stopping server gives requests in flight


def start_daemon(config: ServiceConfig, poll: float = 1.0) -> subprocess.Popen[bytes]:
    """Start ``headrace daemon`` on ``config``'s store."""
    args = [sys.executable, "-c", "from headrace.cli.main import main; main()", "daemon"]
    args += ["--poll", str(poll)]
    if config.home is not None:
        args += ["--home", str(config.home)]
    if config.db is not None:
        args += ["--db", config.db]
    if config.objects is not None:
        args += ["--objects", config.objects]
    return subprocess.Popen(args, env=os.environ.copy())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(DAEMON_STOP_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def serve(
    config: ServiceConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    daemon: bool = True,
    on_started: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM; refuses a non-loopback ``host`` without a token.

    The address is bound before anything starts, so an address in use is an ``OSError`` here
    (and no daemon was started)."""
    check_bind(host, config.token)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    child = start_daemon(config) if daemon else None

    def stop_daemon() -> None:
        if child is not None:
            _stop(child)

    # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, which ends this process
    # before a ``finally`` here would run: the daemon is stopped from the app's shutdown.
    app = create_app(config, on_shutdown=stop_daemon)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False,
            # event streams (a browser tab on the job list) never end by themselves: a stop
            # waits this long for requests in flight, then ends the streams
            timeout_graceful_shutdown=GRACEFUL_S,
        )
    )  # fmt: skip
    if on_started is not None:
        shown = f"[{host}]" if ":" in host else host
        on_started(f"http://{shown}:{port}/")
    try:
        server.run(sockets=[sock])
    finally:
        stop_daemon()
        sock.close()
