"""What the store, the stage catalogue and the run history raise, as HTTP answers.

Every error is ``{"detail": "<message>"}`` with a status saying whose fault it is: 400 for a
malformed name, reference or path (the message names it), 404 for something that does not
exist, 409 for a store that refuses (an open commit, a conflict), 422 for a request that does
not validate (FastAPI's own, naming the field). Nothing the store raises becomes a 500.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from headrace.service.runs import BadEvent, NotDrainable, RunNotFound
from headrace.stages.catalog import JobNotFound, StageNotFound
from headrace.store.errors import InvalidName, InvalidPath, InvalidReference, NotFound, StoreError

__all__ = ["BadRequest", "Forbidden", "install_error_handlers"]


class BadRequest(ValueError):
    """A request the service refuses, with the reason (answered 400)."""


class Forbidden(PermissionError):
    """A request this service is not set up to accept (answered 403)."""


_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (BadRequest, 400),
    (Forbidden, 403),
    (BadEvent, 400),
    (InvalidName, 400),
    (InvalidReference, 400),
    (InvalidPath, 400),
    (NotFound, 404),
    (RunNotFound, 404),
    (JobNotFound, 404),
    (StageNotFound, 404),
    (StoreError, 409),
    (NotDrainable, 409),
)


def _message(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0]  # str() of a KeyError quotes its message
    return text or type(exc).__name__


def install_error_handlers(app: FastAPI) -> None:
    """Answer the errors above with their status and ``{"detail": message}``."""
    for exc_type, status in _STATUS:

        def handler(request: Request, exc: Exception, status: int = status) -> JSONResponse:
            return JSONResponse({"detail": _message(exc)}, status_code=status)

        app.add_exception_handler(exc_type, handler)
