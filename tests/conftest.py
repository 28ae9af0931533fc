"""Shared fixtures: ``make_pipeline`` builds pipelines for each direct-runner configuration.

Tests that take ``make_pipeline`` (or ``pipeline_options``) run twice: in this process and with
two worker processes, so both execution paths must agree.

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
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.store.metadata import Metadata

RUNNER_CONFIGS: dict[str, dict[str, object]] = {
    "in_process": {},
    "two_processes": {"direct_num_workers": 2, "direct_running_mode": "multi_processing"},
}


@pytest.fixture(params=list(RUNNER_CONFIGS))
def pipeline_options(request: pytest.FixtureRequest) -> PipelineOptions:
    """Options for one direct-runner configuration (see ``RUNNER_CONFIGS``)."""
    return PipelineOptions(**RUNNER_CONFIGS[request.param])


@pytest.fixture
def make_pipeline(pipeline_options: PipelineOptions) -> Callable[[], Pipeline]:
    """A factory of pipelines that run with ``pipeline_options``."""
    return lambda: Pipeline(options=pipeline_options)


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
