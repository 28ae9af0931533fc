"""The FastAPI application of the job service: the API routers, the token check, error
answers, and the web UI's assets (shipped in the package, no CDN).

:func:`create_app` opens the store and the stage catalogue once and keeps them on
``app.state`` (``store``, ``catalog``, ``runs``) for the routers; closing happens at shutdown.
``GET /healthz`` is the only path open without the token (it says nothing but ``ok``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

import headrace
from headrace.runners.events import add_listener, remove_listener
from headrace.service import metrics, repos_api, runs_api, stages_api
from headrace.service.config import ServiceConfig, token_matches
from headrace.service.errors import install_error_handlers
from headrace.service.runs import RunHistory, RunRecorder
from headrace.service.submit import Submitter
from headrace.stages.catalog import Catalog
from headrace.store.store import Store

__all__ = ["TOKEN_COOKIE", "create_app", "static_dir"]

TOKEN_COOKIE = "headrace_token"
_OPEN_PATHS = frozenset({"/healthz"})

_DESCRIPTION = """\
The headrace job service: pipeline runs and stage jobs, the versioned store (repos, branches,
commits, files, diff, provenance) and metrics.

When the service was started with a token, every request needs it:
`Authorization: Bearer <token>`. Errors answer `{"detail": "<message>"}`: 400 for a malformed
name, reference, path or filter, 404 for what does not exist, 409 when the store refuses, 422
for a request that does not validate.
"""


_SECURITY_HEADERS = {
    # the UI loads only its own assets; downloads are never sniffed into HTML; no framing
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _harden(response: Response) -> Response:
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def static_dir() -> Any:
    """The folder of the web UI's assets inside the installed package."""
    return resources.files("headrace.service") / "static"


def create_app(
    config: ServiceConfig,
    store: Store | None = None,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    """The application over ``config``'s store (or ``store``, already open); ``on_shutdown``
    runs when the server shuts down gracefully (before a signal that stopped it is re-raised)."""
    own = store is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = store if store is not None else Store.open(config.home, config.db, config.objects)
        app.state.store = opened
        app.state.catalog = Catalog(opened)
        app.state.runs = RunHistory(opened.meta)
        app.state.submitter = Submitter()
        app.state.config = config
        recorder = RunRecorder(app.state.runs, source=f"service:{os.getpid()}")
        add_listener(recorder)  # runs submitted to the service run in this process
        try:
            yield
        finally:
            remove_listener(recorder)
            if on_shutdown is not None:
                on_shutdown()
            if own:
                opened.close()

    app = FastAPI(
        title="headrace",
        version=headrace.__version__,
        description=_DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # Swagger UI and ReDoc load their assets from a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (repos_api, stages_api, runs_api, metrics):
        app.include_router(module.router)

    @app.middleware("http")
    async def require_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not config.token or request.url.path in _OPEN_PATHS:
            return _harden(await call_next(request))
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else None
        via_query = request.query_params.get("token")
        if given is None:
            given = request.cookies.get(TOKEN_COOKIE) or via_query
        if not token_matches(config.token, given):
            return JSONResponse(
                {"detail": "missing or wrong token: send the header 'Authorization: Bearer "
                 "<token>' (in a browser, open /?token=<token> once)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        response = await call_next(request)
        _harden(response)
        if via_query and token_matches(config.token, via_query):
            response.set_cookie(TOKEN_COOKIE, via_query, httponly=True, samesite="strict")
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    assets = static_dir()

    @app.get("/ui/", include_in_schema=False)
    def ui() -> FileResponse:
        return FileResponse(str(assets / "index.html"), media_type="text/html")

    app.mount("/ui/static", StaticFiles(directory=str(assets)), name="static")
    return app
