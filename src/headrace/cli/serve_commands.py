"""The ``serve`` command of ``headrace``: the job service (REST API, web UI, metrics) and, unless
``--no-daemon``, the stage daemon, in one command.

The service needs the extra ``headrace[service]`` (FastAPI, uvicorn); it is imported only when
the command runs, so other commands never load it. Store options follow
:mod:`headrace.cli.common`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from headrace.cli.common import EXIT_USAGE, DbOpt, HomeOpt, ObjectsOpt, error_console, fail

__all__ = ["register", "serve_command"]


def serve_command(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            metavar="ADDRESS",
            help="Address to listen on; one other than loopback needs a --token.",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", "-p", min=1, max=65535, metavar="PORT", help="Port to listen on."),
    ] = 8080,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="HEADRACE_TOKEN",
            metavar="TOKEN",
            help="Require 'Authorization: Bearer TOKEN' on every request (the browser: open "
            "/?token=TOKEN once).",
            show_default=False,
        ),
    ] = None,
    no_daemon: Annotated[
        bool,
        typer.Option("--no-daemon", help="Do not run the stage daemon in the service."),
    ] = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    objects: ObjectsOpt = None,
) -> None:
    try:
        from headrace.service.config import ServiceConfig, UnsafeBind, check_bind
        from headrace.service.server import serve
    except ImportError as e:
        fail(
            f"the job service needs FastAPI and uvicorn ({e}); install headrace[service]",
            EXIT_USAGE,
        )
    config = ServiceConfig(home=home, db=db, objects=objects, token=token or None)
    try:
        check_bind(host, config.token)
    except UnsafeBind as e:
        fail(str(e), EXIT_USAGE)
    console = error_console()

    def started(url: str) -> None:
        daemon = "without the stage daemon" if no_daemon else "with the stage daemon"
        console.print(f"headrace service on {url} ({daemon}); stop it with Ctrl-C", soft_wrap=True)

    try:
        serve(config, host, port, daemon=not no_daemon, on_started=started)
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}")


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command(
        "serve",
        help=(
            "Serve the job service: the REST API under /api/v1 (OpenAPI at "
            "/api/v1/openapi.json), the web UI at /ui/, Prometheus metrics at /metrics, and "
            "the stage daemon (unless --no-daemon). Pipelines report to it with "
            "'headrace run --service URL'."
        ),
    )(serve_command)
