"""The ``headrace`` command line.

The console script entry point is :func:`headrace.cli.main.main`; the typer application is
:data:`headrace.cli.main.app`. Its commands live in one module per concern:

- :mod:`~headrace.cli.main`: ``run``, ``plan`` and ``version``, and the wiring of the others;
- :mod:`~headrace.cli.repo_commands` (``repo``, ``branch``, ``merge``),
  :mod:`~headrace.cli.commit_commands` (``commit``), :mod:`~headrace.cli.file_commands`
  (``file``) and :mod:`~headrace.cli.maintenance_commands` (``fsck``, ``gc``), sharing
  :mod:`~headrace.cli.common` (store options, errors and exit statuses, output);
- :mod:`~headrace.cli.stage_commands` (``stage``), :mod:`~headrace.cli.job_commands` (``job``,
  ``datum``) and :mod:`~headrace.cli.daemon_command` (``daemon``), sharing
  :mod:`~headrace.cli.stage_common` (the stage catalogue, jobs shown and run).

Start-up cost: a command imports only what it uses. The command modules import typer, rich and
the light parts of the store (errors, references); the store itself, the stage layer, the SDK and
the runner are imported inside the commands that need them. This package therefore imports
nothing at all until ``app`` or ``main`` is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.cli.main import app, main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from headrace.cli import main as main_module

        return getattr(main_module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
