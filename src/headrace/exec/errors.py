"""Turning an exception in user code into an error that names the transform and the element.

The user's own exception is kept (same type, same traceback frames) and gets a note, so
``pytest.raises(ZeroDivisionError)`` still works and the traceback shows where in user code it
happened. The failing element is read from the executor frame that was processing it (the loop
variable ``x``), which costs nothing on the fast path.
"""

from __future__ import annotations

import reprlib
from types import TracebackType
from typing import Any

__all__ = ["annotate", "element_from_traceback", "element_of", "is_annotated", "label_of"]

_MISSING = object()
_repr = reprlib.Repr()
_repr.maxstring = 120
_repr.maxother = 120
_repr.maxlist = 8
_repr.maxtuple = 8
_repr.maxdict = 8
_repr.maxlevel = 3

EXEC_PACKAGE = "headrace.exec"


def truncated_repr(value: Any) -> str:
    try:
        return _repr.repr(value)
    except Exception:  # a user __repr__ that fails must not hide the real error
        return f"<{type(value).__name__} with a failing __repr__>"


def element_from_traceback(tb: TracebackType | None) -> Any:
    """The value of ``x`` in the deepest executor frame of ``tb``, or a sentinel."""
    found: Any = _MISSING
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_globals.get("__name__", "").startswith(EXEC_PACKAGE) and "x" in frame.f_locals:
            found = frame.f_locals["x"]
        tb = tb.tb_next
    return found


def is_annotated(exc: BaseException) -> bool:
    return getattr(exc, "_headrace_label", None) is not None


def annotate(
    exc: BaseException, label: str, element: Any = _MISSING, what: str = ""
) -> BaseException:
    """Add a note naming ``label`` (and the element) to ``exc``, once."""
    if is_annotated(exc):
        return exc
    if element is _MISSING:
        element = element_from_traceback(exc.__traceback__)
    try:
        exc._headrace_label = label  # type: ignore[attr-defined]
    except AttributeError:
        pass
    from headrace.model.window import WindowedValue

    if isinstance(element, WindowedValue):
        element = element.value
    where = f" in {what}" if what else ""
    if element is _MISSING:
        note = f"headrace: transform {label!r} failed{where}"
    else:
        shown = truncated_repr(element)
        note = f"headrace: transform {label!r} failed{where} on element {shown}"
        try:
            exc._headrace_element = shown  # type: ignore[attr-defined]
        except AttributeError:
            pass
    exc.add_note(note)
    return exc


def label_of(exc: BaseException) -> str | None:
    """The label of the transform whose user code raised ``exc`` (after :func:`annotate`)."""
    return getattr(exc, "_headrace_label", None)


def element_of(exc: BaseException) -> str | None:
    """A short repr of the element being processed when ``exc`` was raised, when known."""
    return getattr(exc, "_headrace_element", None)
