"""The layer table of DESIGN.md, enforced: no module imports from a layer it may not use."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "headrace"

# Model modules that are plain value types; executors and runners may use them.
MODEL_VALUE_TYPES = {
    "headrace.model.window",
    "headrace.model.timestamp",
    "headrace.model.metrics",
    "headrace.model.pvalue",
    "headrace.model.result",
    "headrace.model.trigger",
    "headrace.model.userstate",
}

ALLOWED: dict[str, set[str]] = {
    "headrace.graph": set(),
    "headrace.model": {"headrace.graph"},
    "headrace.testing": {"headrace.model", "headrace.graph"},
    "headrace.plan": {"headrace.graph"},
    "headrace.exec": {"headrace.graph", *MODEL_VALUE_TYPES},
    "headrace.io": {"headrace.model", "headrace.graph", "headrace.store"},
    "headrace.store": set(),
    "headrace.runners": {"headrace.exec", "headrace.plan", "headrace.graph", *MODEL_VALUE_TYPES},
    "headrace.beam": {"headrace.model", "headrace.io", "headrace.testing", "headrace.graph"},
    "headrace.stages": {"headrace.store", "headrace.runners", "headrace.model", "headrace.graph"},
    "headrace.cli": {"headrace"},
    "headrace.__main__": {"headrace.cli"},  # python -m headrace: the command line, nothing else
    "headrace.service": {"headrace"},
    "headrace.examples": {"headrace"},
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        out.append((name, path))
    return out


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m for m in found if m == "headrace" or m.startswith("headrace.")}


def _allowed(layer: str, target: str) -> bool:
    if _layer(target) == layer or target == "headrace":
        return True
    for allowed in ALLOWED[layer]:
        if target == allowed or target.startswith(allowed + "."):
            return True
    return False


@pytest.mark.parametrize(("module", "path"), _modules(), ids=str)
def test_module_respects_layers(module: str, path: Path) -> None:
    layer = _layer(module)
    if layer == "headrace":
        return
    assert layer in ALLOWED, f"{module} is in no layer of DESIGN.md; add it to the table"
    bad = sorted(t for t in _imports(path) if not _allowed(layer, t))
    assert not bad, f"{module} ({layer}) imports {bad}, which its layer may not use"
