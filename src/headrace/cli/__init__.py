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
"""

from headrace.cli.main import app, main

__all__ = ["app", "main"]
