"""``python -m headrace``: the ``headrace`` command line, for when the console script is not on
the PATH (``python -m headrace repo list`` is ``headrace repo list``)."""

from __future__ import annotations

from headrace.cli.main import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
