"""Reading small user functions to find cheaper equivalent plans.

Like polars' inspection of ``map_elements`` lambdas, the planner looks at the bytecode of a few
trivial function shapes. Today one shape matters: ``lambda x: (x, CONST)``, the "pair with one"
step of a word count. When it feeds a lifted ``CombinePerKey(sum)`` (with ``CONST == 1``) or a
count, the planner counts the elements themselves with a C-level counter instead of building a
tuple per element. Anything that does not match exactly is left alone.
"""

from __future__ import annotations

import dis
from typing import Any

__all__ = ["pairs_with_constant"]

_NO_MATCH = (False, None)
_IGNORED = {"RESUME", "NOP", "CACHE", "EXTENDED_ARG"}


def pairs_with_constant(fn: Any) -> tuple[bool, Any]:
    """``(True, c)`` when ``fn`` is exactly ``lambda x: (x, c)`` for a constant ``c``.

    >>> pairs_with_constant(lambda w: (w, 1))
    (True, 1)
    >>> pairs_with_constant(lambda w: (w.lower(), 1))
    (False, None)
    """
    code = getattr(fn, "__code__", None)
    if code is None or getattr(fn, "__defaults__", None) or getattr(fn, "__kwdefaults__", None):
        return _NO_MATCH
    if code.co_argcount != 1 or code.co_kwonlyargcount or code.co_flags & 0x0C:  # *args, **kw
        return _NO_MATCH
    try:
        ops = [i for i in dis.get_instructions(code) if i.opname not in _IGNORED]
    except Exception:  # pragma: no cover - exotic code objects
        return _NO_MATCH
    names = [i.opname for i in ops]
    if names != ["LOAD_FAST", "LOAD_CONST", "BUILD_TUPLE", "RETURN_VALUE"]:
        return _NO_MATCH
    if ops[0].argval != code.co_varnames[0] or ops[2].argval != 2:
        return _NO_MATCH
    return (True, ops[1].argval)
