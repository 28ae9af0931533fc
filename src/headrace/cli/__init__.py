"""The ``headrace`` command line: ``headrace run``, ``headrace plan`` and ``headrace version``.

The console script entry point is :func:`headrace.cli.main.main`; the typer application is
:data:`headrace.cli.main.app`.
"""

from headrace.cli.main import app, main

__all__ = ["app", "main"]
