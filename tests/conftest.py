"""Shared fixtures: ``make_pipeline`` builds pipelines for each runner configuration.

Tests that take ``make_pipeline`` (or ``pipeline_options``) form the runner suite: they run once
per entry of ``RUNNER_CONFIGS`` (in this process; two worker processes; every task in a fresh
interpreter from its pickled input, the toy remote executor of ``tests/runners/
subprocess_executor.py``), so every execution path must agree. A new runner adds one entry.
A test that a configuration cannot pass yet says so with
``@pytest.mark.runner_gap("<config>", reason=...)``: it is then an expected failure (strict, so
closing the gap is noticed) on that configuration only.

Metadata backends: ``metadata_url`` runs a test once per backend in ``BACKENDS``:
``sqlite_metadata_url`` (a file in ``tmp_path``) and ``postgresql_metadata_url`` (a fresh schema
``t_<random>`` in the database of ``HEADRACE_TEST_POSTGRES_URL``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``, selected through ``search_path`` and
dropped afterwards); ``metadata`` is an open :class:`Metadata` on that URL. When PostgreSQL is
unreachable its tests fail if ``CI`` is set (start it with ``scripts/services.sh``) and are
skipped, with the reason, otherwise.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.store.metadata import Metadata


def _load_subprocess_executor() -> object:
    """tests/runners/subprocess_executor.py as a module (the tests folder is not a package)."""
    name = "headrace_tests_subprocess_executor"
    if name not in sys.modules:
        path = Path(__file__).parent / "runners" / "subprocess_executor.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@dataclass(frozen=True)
class RunnerConfig:
    """One runner configuration of the runner suite: its options, and marks for its variants."""

    options: dict[str, object]
    make_runner: Callable[[], object] | None = None
    marks: tuple[pytest.MarkDecorator, ...] = field(default_factory=tuple)

    def pipeline_options(self) -> PipelineOptions:
        values = dict(self.options)
        if self.make_runner is not None:
            values["runner"] = self.make_runner()
        return PipelineOptions(**values)


RUNNER_CONFIGS: dict[str, RunnerConfig] = {
    "in_process": RunnerConfig({}),
    "two_processes": RunnerConfig(
        {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}
    ),
    # One interpreter start per task: about a second per test, so only in the slow runs.
    "subprocess_tasks": RunnerConfig(
        {},
        lambda: _load_subprocess_executor().subprocess_runner(),  # type: ignore[attr-defined]
        (pytest.mark.slow,),
    ),
    # Every task a Ray task on a two-node local cluster (one per test session, ``ray_cluster``).
    "ray": RunnerConfig({"runner": "RayRunner"}, marks=(pytest.mark.slow,)),
}


@pytest.fixture(
    params=[pytest.param(name, marks=c.marks, id=name) for name, c in RUNNER_CONFIGS.items()]
)
def runner_config(request: pytest.FixtureRequest) -> str:
    """The name of one runner configuration (see ``RUNNER_CONFIGS``); applies ``runner_gap``."""
    name: str = request.param
    for mark in request.node.iter_markers("runner_gap"):
        if name in mark.args:
            reason = mark.kwargs.get("reason", "")
            request.applymarker(pytest.mark.xfail(strict=True, reason=f"{name}: {reason}"))
    return name


@pytest.fixture
def pipeline_options(runner_config: str, request: pytest.FixtureRequest) -> PipelineOptions:
    """Options (with the runner) for one runner configuration (see ``RUNNER_CONFIGS``)."""
    if runner_config == "ray":
        request.getfixturevalue("ray_cluster")
    return RUNNER_CONFIGS[runner_config].pipeline_options()


@pytest.fixture
def make_pipeline(pipeline_options: PipelineOptions) -> Callable[[], Pipeline]:
    """A factory of pipelines that run with ``pipeline_options``."""
    return lambda: Pipeline(options=pipeline_options)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """A local Ray cluster of two nodes with one CPU each, connected, for the whole session.

    Ray workers import test modules by name (functions defined in tests pickle by reference), so
    the repository root goes on their ``PYTHONPATH``.
    """
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        message = "Ray is not installed (pip install -e '.[ray]'); the ray configuration needs it"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)

    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = root + (os.pathsep + path if path else "")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        if path:
            os.environ["PYTHONPATH"] = path
        else:
            del os.environ["PYTHONPATH"]


POSTGRES_URL = os.environ.get(
    "HEADRACE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@functools.cache
def _postgres_problem() -> str | None:
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as e:
        cause = getattr(e, "orig", None) or e
        return f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause) else ''}"
    finally:
        engine.dispose()
    return None


def require_postgres() -> None:
    """Fail (in CI) or skip (elsewhere) the calling test if PostgreSQL is unreachable."""
    problem = _postgres_problem()
    if problem is None:
        return
    message = (
        f"PostgreSQL at {sa.make_url(POSTGRES_URL).render_as_string(hide_password=True)} is "
        f"unreachable ({problem}); start it with scripts/services.sh or set "
        "HEADRACE_TEST_POSTGRES_URL"
    )
    if _in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def sqlite_metadata_url(tmp_path: Path) -> str:
    """The URL of a new SQLite metadata file."""
    return f"sqlite:///{tmp_path / 'metadata.db'}"


@pytest.fixture
def postgresql_metadata_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL schema (dropped after the test)."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            # A connection left inside a transaction would block the drop forever.
            conn.execute(sa.text("SET LOCAL lock_timeout = '20s'"))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def metadata_url(request: pytest.FixtureRequest) -> str:
    """A fresh metadata database URL, once per backend (SQLite file, PostgreSQL schema)."""
    return str(request.getfixturevalue(f"{request.param}_metadata_url"))


@pytest.fixture
def metadata(metadata_url: str) -> Iterator[Metadata]:
    """An open :class:`Metadata` on ``metadata_url``, closed after the test."""
    meta = Metadata(metadata_url)
    try:
        yield meta
    finally:
        meta.close()
