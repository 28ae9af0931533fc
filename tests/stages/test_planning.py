"""The incremental planner (from the diff of the input commits) agrees with the full one."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from headrace.stages import planning
from headrace.stages.catalog import SUCCESS, Catalog
from headrace.stages.jobs import create_job, run_job
from headrace.stages.spec import load_spec
from headrace.store.store import Store

TRANSFORM = """
import os
def run(inputs, output):
    (output / (os.environ["HEADRACE_DATUM_ID"] + ".out")).write_text("x")
"""

names = st.sampled_from(["a", "b", "c.txt", "d.csv"])
paths = st.lists(names, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
trees = st.dictionaries(paths, st.binary(max_size=3), min_size=1, max_size=12)
GLOBS = ["/", "/*", "/*/*", "/a/*", "/*/", "/(*)/*.txt", "/?", "/[ab]/*"]


def _valid(files: dict[str, bytes]) -> dict[str, bytes]:
    """Drop paths that would be both a file and a folder."""
    out: dict[str, bytes] = {}
    for path in sorted(files, key=len):
        if not any(path.startswith(p + "/") for p in out):
            out[path] = files[path]
    return out


def _summary(plan: planning.Plan) -> tuple[object, ...]:
    return (
        sorted((d.id, d.hash) for d in plan.run),
        sorted(plan.deletions),
        sorted(plan.gone),
        plan.skip_count,
        plan.total,
        sorted(s[0] for s in plan.skipped),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=trees,
    changes=st.dictionaries(paths, st.one_of(st.none(), st.binary(max_size=3)), max_size=6),
    glob=st.sampled_from(GLOBS),
)
@pytest.mark.slow
@example(before={"/b/a": b""}, changes={"/b": b""}, glob="/*/")  # a folder match became a file
def test_incremental_plan_equals_the_full_plan(before, changes, glob):
    root = Path(tempfile.mkdtemp())
    store = Store.open(root / "store")
    try:
        (root / "plan_mod.py").write_text(textwrap.dedent(TRANSFORM))
        catalog = Catalog(store)
        store.create_repo("data")
        before = _valid(before)
        store.put_files("data@master", list(before.items()))
        spec = {"name": "s", "input": {"pfs": {"repo": "data", "glob": glob}},
                "transform": {"python": "plan_mod:run"}}  # fmt: skip
        catalog.put_stage(load_spec(spec), str(root / "spec.yaml"))
        first = run_job(catalog, "s")
        assert first.state == SUCCESS, first.reason
        after = dict(before)
        for path, data in changes.items():
            if data is None:
                after.pop(path, None)
            else:
                after[path] = data
        after = _valid(after)
        with store.commit("data@master") as c:
            for path in before:
                if path not in after:
                    c.delete_file(path)
            for path, data in after.items():
                if before.get(path) != data or path not in before:
                    c.put_file(path, data)
        job = catalog.get_job(create_job(catalog, "s"))
        fast = planning._incremental_plan(catalog, job)
        full = planning._full_plan(catalog, job, {})
        if "**" not in glob:
            assert fast is not None
            assert _summary(fast) == _summary(full)
    finally:
        store.close()
