"""Fixtures for stage tests: a store, its catalogue, and transforms written as real modules.

``kit`` runs a test once per metadata backend (SQLite, PostgreSQL; see ``tests/conftest.py``).
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

import pytest

from headrace.stages.catalog import Catalog, StageInfo
from headrace.stages.spec import load_spec
from headrace.store.store import Store

_names = itertools.count()


class StageKit:
    """A store + catalogue in a temporary folder, and helpers to define stages."""

    def __init__(self, root: Path, db: str | None = None) -> None:
        self.root = root
        self.db = db
        self.store = Store.open(root / "store", db=db)
        self.catalog = Catalog(self.store)
        self.code = root / "code"
        self.code.mkdir()

    def module(self, source: str) -> str:
        """Write ``source`` as a new module beside the specs; return its name."""
        name = f"stage_mod_{next(_names)}"
        (self.code / f"{name}.py").write_text(textwrap.dedent(source))
        return name

    def stage(self, spec: dict[str, Any], update: bool = False) -> StageInfo:
        parsed = load_spec(spec)
        return self.catalog.put_stage(parsed, str(self.code / "spec.yaml"), update=update)

    def files(self, ref: str) -> dict[str, bytes]:
        return {f.path: self.store.get_file(f"{ref}:{f.path}") for f in self.store.walk_files(ref)}


@pytest.fixture
def kit(tmp_path: Path, metadata_url: str) -> StageKit:
    k = StageKit(tmp_path, metadata_url)
    yield k
    k.store.close()
