"""The stage catalogue: stages, jobs, datums and traces, kept in the store's own SQL database.

Stages live beside the repos they read and write, in the same database, so that a job's
bookkeeping changes in the same transaction as the commit it concerns (the store's
``start_commit``/``stage_files``/``finish_commit``/``delete_commit`` take an ``also`` hook that
runs the catalogue's statements on their connection). A crash therefore never leaves a finished
output commit whose job still says RUNNING, or staged outputs of a datum the job does not know.

Tables (times are seconds since the epoch):

``stage_schema_version``  ``version``, ``applied_at``: migrations of the tables below.
``stages``       ``name`` (PK), ``spec`` (JSON of the normalised spec), ``version`` (the spec's
                 :attr:`~headrace.stages.spec.StageSpec.version`), ``spec_file`` (where it was
                 read from: its folder is put on ``sys.path`` for the transform), ``created_at``,
                 ``updated_at``, ``stopped``.
``jobs``         ``id`` (PK, 32 hex), ``seq`` (creation order), ``stage``, ``state`` (CREATED,
                 RUNNING, SUCCESS, FAILURE, KILLED, UNRUNNABLE), ``spec`` and ``version`` as run,
                 ``inputs`` (JSON: input name -> commit id), ``output_commit``, ``trace`` (the
                 id tying every job and commit caused by one upstream commit), counts
                 (``total``, ``processed``, ``skipped``, ``failed``, ``recovered``),
                 ``created_at``, ``started_at``, ``finished_at``, ``reason`` (why it failed),
                 ``owner`` and ``heartbeat`` (the process running it and when it last said so),
                 ``stop_requested``, ``skips_recorded`` (its skipped datums have rows).
``datums``       ``job_id``, ``datum_id`` (PK together), ``state`` (success, skipped, failed,
                 recovered), ``hash``, ``outputs`` (JSON list of ``[path, content hash, size]``),
                 ``attempts``, ``seconds``, ``error``, ``log``, ``inputs`` (JSON list of
                 ``[input name, matched path]``).
``traces``       ``commit_id`` (PK), ``trace``: the trace of a commit a job made.
``cron_ticks``   ``stage``, ``input`` (PK together), ``last_tick``: the last tick written.
``stage_locks``  ``name`` (PK), ``owner``, ``heartbeat``: who holds a lock (the daemon's).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from headrace.stages.jobstate import INITIAL, TERMINAL, IllegalJobMove, JobState, check_move
from headrace.stages.spec import StageSpec, load_spec
from headrace.store.store import Store

__all__ = [
    "CREATED",
    "FAILURE",
    "JOB_STATES",
    "KILLED",
    "RUNNING",
    "SUCCESS",
    "TERMINAL",
    "UNRUNNABLE",
    "Catalog",
    "DatumRecord",
    "JobInfo",
    "JobNotFound",
    "StageInfo",
    "StageNotFound",
]

# job states: the state machine is documented, and its moves listed, in headrace.stages.jobstate
CREATED, RUNNING, SUCCESS, FAILURE, KILLED, UNRUNNABLE = tuple(JobState)
JOB_STATES = tuple(JobState)

# datum states
DATUM_SUCCESS, DATUM_SKIPPED, DATUM_FAILED, DATUM_RECOVERED = (
    "success",
    "skipped",
    "failed",
    "recovered",
)
DONE_STATES = (DATUM_SUCCESS, DATUM_SKIPPED, DATUM_RECOVERED)


class StageNotFound(LookupError):
    """No stage of that name."""


class JobNotFound(LookupError):
    """No job with that id (or prefix)."""


_META = sa.MetaData()
_stages = sa.Table(
    "stages",
    _META,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("spec_file", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("stopped", sa.Boolean, nullable=False, server_default=sa.false()),
)
_jobs = sa.Table(
    "jobs",
    _META,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False, unique=True),
    sa.Column("stage", sa.String(100), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("output_commit", sa.String(32)),
    sa.Column("trace", sa.String(32), nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("processed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("skipped", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("recovered", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("owner", sa.String(200)),
    sa.Column("heartbeat", sa.Double),
    sa.Column("stop_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("skips_recorded", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("jobs_stage_seq", "stage", "seq"),
    sa.Index("jobs_trace", "trace"),
    sa.Index("jobs_state", "state"),
)
_datums = sa.Table(
    "datums",
    _META,
    sa.Column("job_id", sa.String(32), primary_key=True),
    sa.Column("datum_id", sa.String(32), primary_key=True),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("outputs", sa.Text, nullable=False, server_default="[]"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("seconds", sa.Double, nullable=False, server_default="0"),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.Column("log", sa.Text, nullable=False, server_default=""),
    sa.Column("inputs", sa.Text, nullable=False, server_default="[]"),
)
_DATUM_COLUMNS = tuple(c.name for c in _datums.c)
_traces = sa.Table(
    "traces",
    _META,
    sa.Column("commit_id", sa.String(32), primary_key=True),
    sa.Column("trace", sa.String(32), nullable=False),
    sa.Index("traces_trace", "trace"),
)
_cron_ticks = sa.Table(
    "cron_ticks",
    _META,
    sa.Column("stage", sa.String(100), primary_key=True),
    sa.Column("input", sa.String(100), primary_key=True),
    sa.Column("last_tick", sa.Double, nullable=False),
)
_locks = sa.Table(
    "stage_locks",
    _META,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("heartbeat", sa.Double, nullable=False),
)
_VERSION_TABLE = sa.Table(
    "stage_schema_version",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.Double, nullable=False),
)
_SCHEMA_VERSION = 1
_MIGRATION_LOCK = 0x7374616765  # "stage"


@dataclass(frozen=True)
class StageInfo:
    """A stage as the catalogue holds it."""

    name: str
    spec: StageSpec
    version: str
    spec_file: str | None
    created_at: float
    updated_at: float
    stopped: bool

    @property
    def output_repo(self) -> str:
        """The repo the stage writes: named after it."""
        return self.name


@dataclass(frozen=True)
class JobInfo:
    """One run of a stage over one set of input commits."""

    id: str
    stage: str
    state: str
    spec: StageSpec
    version: str
    inputs: dict[str, str]
    output_commit: str | None
    trace: str
    total: int
    processed: int
    skipped: int
    failed: int
    recovered: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    reason: str
    owner: str | None
    heartbeat: float | None
    stop_requested: bool
    seq: int = 0
    skips_recorded: bool = False

    @property
    def done(self) -> bool:
        """True once the job is in a final state."""
        return self.state in TERMINAL

    @property
    def seconds(self) -> float | None:
        """How long it ran (so far, if it still runs)."""
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else time.time()
        return end - self.started_at


@dataclass(frozen=True)
class DatumRecord:
    """A datum's result in one job."""

    job_id: str
    datum_id: str
    state: str
    hash: str
    outputs: str = "[]"
    attempts: int = 0
    seconds: float = 0.0
    error: str = ""
    log: str = ""
    inputs: str = "[]"

    def output_files(self) -> list[tuple[str, str, int]]:
        """``(path, content hash, size)`` of every file the datum wrote."""
        return [(p, h, s) for p, h, s in json.loads(self.outputs)]

    def input_paths(self) -> list[tuple[str, str]]:
        """``(input name, matched path)`` of each part of the datum."""
        return [(n, p) for n, p in json.loads(self.inputs)]


def owner_id() -> str:
    """``host:pid`` of this process: who runs a job."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Catalog:
    """The stage tables of ``store``'s database (created on first use)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.meta = store.meta
        self._migrate()

    # ---- schema

    def _migrate(self) -> None:
        with self.meta.read() as conn:
            if self._version(conn) == _SCHEMA_VERSION:
                return
        with self.meta.transaction() as conn:
            if self.meta.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            if self._version(conn) == _SCHEMA_VERSION:
                return
            _VERSION_TABLE.create(conn, checkfirst=True)
            _META.create_all(conn, checkfirst=True)
            conn.execute(_VERSION_TABLE.insert().values(version=1, applied_at=time.time()))

    @staticmethod
    def _version(conn: Connection) -> int:
        if not sa.inspect(conn).has_table("stage_schema_version"):
            return 0
        version = int(conn.scalar(sa.select(sa.func.max(_VERSION_TABLE.c.version))) or 0)
        if version > _SCHEMA_VERSION:
            raise RuntimeError(
                f"the stage tables have schema version {version}, newer than this headrace "
                f"knows ({_SCHEMA_VERSION}); upgrade headrace"
            )
        return version

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction on the store's database."""
        with self.meta.transaction() as conn:
            yield conn

    # ---- stages

    def put_stage(
        self, spec: StageSpec, spec_file: str | None = None, *, update: bool = False
    ) -> StageInfo:
        """Create (or with ``update``, replace) a stage."""
        now = time.time()
        text = json.dumps(spec.to_dict(), sort_keys=True)
        with self.meta.transaction() as conn:
            row = conn.execute(sa.select(_stages).where(_stages.c.name == spec.name)).first()
            if row is not None and not update:
                raise FileExistsError(
                    f"stage {spec.name!r} already exists; use 'headrace stage update' to "
                    "change its spec"
                )
            if row is None and update:
                raise StageNotFound(
                    f"no stage {spec.name!r} to update; create it with 'headrace stage create'"
                )
            values = {"spec": text, "version": spec.version, "spec_file": spec_file}
            if row is None:
                conn.execute(
                    _stages.insert().values(
                        name=spec.name, created_at=now, updated_at=now, stopped=False, **values
                    )
                )
            else:
                conn.execute(
                    _stages.update()
                    .where(_stages.c.name == spec.name)
                    .values(updated_at=now, **values)
                )
        return self.get_stage(spec.name)

    def get_stage(self, name: str) -> StageInfo:
        with self.meta.read() as conn:
            row = conn.execute(sa.select(_stages).where(_stages.c.name == name)).first()
        if row is None:
            known = ", ".join(s.name for s in self.list_stages()) or "none"
            raise StageNotFound(f"no stage named {name!r} (stages: {known})")
        return _stage(row)

    def list_stages(self) -> list[StageInfo]:
        with self.meta.read() as conn:
            rows = conn.execute(sa.select(_stages).order_by(_stages.c.name)).all()
        return [_stage(r) for r in rows]

    def set_stopped(self, name: str, stopped: bool) -> None:
        self.get_stage(name)
        with self.meta.transaction() as conn:
            conn.execute(_stages.update().where(_stages.c.name == name).values(stopped=stopped))

    def delete_stage(self, name: str) -> None:
        """Forget a stage with its jobs and datums (its output repo is the caller's concern)."""
        self.get_stage(name)
        with self.meta.transaction() as conn:
            ids = sa.select(_jobs.c.id).where(_jobs.c.stage == name)
            conn.execute(_datums.delete().where(_datums.c.job_id.in_(ids)))
            conn.execute(_jobs.delete().where(_jobs.c.stage == name))
            conn.execute(_cron_ticks.delete().where(_cron_ticks.c.stage == name))
            conn.execute(_stages.delete().where(_stages.c.name == name))

    # ---- jobs

    def create_job(
        self,
        conn: Connection,
        stage: StageInfo,
        inputs: Mapping[str, str],
        trace: str,
        state: str = CREATED,
        reason: str = "",
    ) -> str:
        """Insert a job row on ``conn`` in ``state`` (CREATED or UNRUNNABLE, the states a job
        is born in); returns its id."""
        if state not in INITIAL:
            raise IllegalJobMove(
                f"a job cannot be created {state}: it starts CREATED or UNRUNNABLE"
            )
        job_id = uuid.uuid4().hex
        seq = int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(_jobs.c.seq), 0))) or 0) + 1
        now = time.time()
        conn.execute(
            _jobs.insert().values(
                id=job_id,
                seq=seq,
                stage=stage.name,
                state=state,
                spec=json.dumps(stage.spec.to_dict(), sort_keys=True),
                version=stage.version,
                inputs=json.dumps(dict(inputs), sort_keys=True),
                trace=trace,
                owner=owner_id(),
                heartbeat=now,
                created_at=now,
                finished_at=now if state in TERMINAL else None,
                reason=reason,
            )
        )
        return job_id

    def update_job(self, conn: Connection, job_id: str, **values: Any) -> None:
        """Set columns of a job on ``conn``; its state changes only by :meth:`move_job`."""
        if "state" in values:
            raise TypeError("a job's state changes only by Catalog.move_job")
        conn.execute(_jobs.update().where(_jobs.c.id == job_id).values(**values))

    def move_job(self, conn: Connection, job_id: str, state: str, **values: Any) -> JobState:
        """Move a job to ``state`` (and set ``values``) on ``conn``: the one place a job's state
        changes. The current state is read in the same transaction (locking the row where the
        database can) and the move checked against :data:`headrace.stages.jobstate.MOVES`;
        :class:`~headrace.stages.jobstate.IllegalJobMove` if it is not allowed. Returns the
        state the job was in."""
        query = sa.select(_jobs.c.state).where(_jobs.c.id == job_id)
        if conn.dialect.name != "sqlite":  # SQLite's write transactions are serialised already
            query = query.with_for_update()
        old = conn.scalar(query)
        if old is None:
            raise JobNotFound(f"no job {job_id!r}; 'headrace job list' shows the jobs")
        check_move(old, state)
        conn.execute(_jobs.update().where(_jobs.c.id == job_id).values(state=str(state), **values))
        return JobState(old)

    def set_job(self, job_id: str, **values: Any) -> None:
        with self.meta.transaction() as conn:
            self.update_job(conn, job_id, **values)

    def get_job(self, job_id: str) -> JobInfo:
        """A job by id or by a unique prefix of at least 4 characters."""
        with self.meta.read() as conn:
            row = conn.execute(sa.select(_jobs).where(_jobs.c.id == job_id)).first()
            if row is None and len(job_id) >= 4:
                rows = conn.execute(
                    sa.select(_jobs).where(_jobs.c.id.startswith(job_id)).limit(2)
                ).all()
                if len(rows) > 1:
                    raise JobNotFound(f"job id prefix {job_id!r} is ambiguous; give more of it")
                row = rows[0] if rows else None
        if row is None:
            raise JobNotFound(f"no job {job_id!r}; 'headrace job list' shows the jobs")
        return _job(row)

    def list_jobs(
        self,
        stage: str | None = None,
        states: Iterable[str] | None = None,
        trace: str | None = None,
        limit: int | None = None,
        before_seq: int | None = None,
    ) -> list[JobInfo]:
        """Jobs, newest first (created before the job numbered ``before_seq``, if given)."""
        query = sa.select(_jobs).order_by(_jobs.c.seq.desc())
        if before_seq is not None:
            query = query.where(_jobs.c.seq < before_seq)
        if stage is not None:
            query = query.where(_jobs.c.stage == stage)
        if states is not None:
            query = query.where(_jobs.c.state.in_(list(states)))
        if trace is not None:
            query = query.where(_jobs.c.trace == trace)
        if limit is not None:
            query = query.limit(limit)
        with self.meta.read() as conn:
            return [_job(r) for r in conn.execute(query).all()]

    def last_job(self, stage: str, states: Iterable[str] | None = None) -> JobInfo | None:
        jobs = self.list_jobs(stage, states=states, limit=1)
        return jobs[0] if jobs else None

    # ---- datums

    def insert_datums(self, conn: Connection, rows: Sequence[DatumRecord]) -> None:
        """Insert datum rows on ``conn``, replacing rows of the same job and datum (a datum
        retried after an interruption may already have one)."""
        if not rows:
            return
        columns = {name: [getattr(r, name) for r in rows] for name in _DATUM_COLUMNS}
        update = tuple(n for n in _DATUM_COLUMNS if n not in ("job_id", "datum_id"))
        self.meta.ops.bulk_insert(conn, _datums, columns, update=update)

    def add_skipped(
        self, conn: Connection, job_id: str, rows: Sequence[tuple[str, str, str, str]]
    ) -> None:
        """Record skipped datums: ``(datum id, hash, outputs JSON, inputs JSON)`` rows, new to
        the job. The fast path of a job that skips most of its datums: one bulk insert."""
        if not rows:
            return
        ids, hashes, outputs, inputs = (list(c) for c in zip(*rows))
        columns = {
            "job_id": [job_id] * len(ids),
            "datum_id": ids,
            "state": [DATUM_SKIPPED] * len(ids),
            "hash": hashes,
            "outputs": outputs,
            "inputs": inputs,
        }
        self.meta.ops.bulk_insert(conn, _datums, columns)

    def datums(
        self, job_id: str, states: Iterable[str] | None = None, with_logs: bool = False
    ) -> list[DatumRecord]:
        """The datum rows of a job."""
        columns = [c for c in _datums.c if with_logs or c.name != "log"]
        query = sa.select(*columns).where(_datums.c.job_id == job_id)
        if states is not None:
            query = query.where(_datums.c.state.in_(list(states)))
        with self.meta.read() as conn:
            rows = conn.execute(query.order_by(_datums.c.datum_id)).all()
        return [DatumRecord(**r._asdict()) for r in rows]

    def datum_hashes(self, job_id: str) -> dict[str, str]:
        """``datum id -> hash`` of the datums a job completed (what the next job compares)."""
        # A plain driver cursor: the rows are two strings each, and a job start reads 100k of
        # them; building SQLAlchemy rows would cost more than the query.
        mark = "?" if self.meta.dialect == "sqlite" else "%s"
        sql = (
            f"SELECT datum_id, hash FROM datums WHERE job_id = {mark} "
            f"AND state IN ({', '.join([mark] * len(DONE_STATES))})"
        )
        with self.meta.read() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sql, (job_id, *DONE_STATES))
                return dict(cursor.fetchall())
            finally:
                cursor.close()

    def datum_details(
        self, job_id: str, ids: Collection[str] | None = None
    ) -> dict[str, tuple[str, str, str]]:
        """``datum id -> (hash, outputs JSON, inputs JSON)`` of completed datums of a job (all,
        or those among ``ids``)."""
        c = _datums.c
        query = sa.select(c.datum_id, c.hash, c.outputs, c.inputs).where(
            c.job_id == job_id, c.state.in_(DONE_STATES)
        )
        out: dict[str, tuple[str, str, str]] = {}
        with self.meta.read() as conn:
            if ids is None:
                return {d: (h, o, i) for d, h, o, i in conn.execute(query)}
            wanted = list(ids)
            for start in range(0, len(wanted), 900):
                batch = wanted[start : start + 900]
                for d, h, o, i in conn.execute(query.where(c.datum_id.in_(batch))):
                    out[d] = (h, o, i)
        return out

    def count_datums(self, job_id: str) -> int:
        """How many datums a job completed."""
        c = _datums.c
        query = sa.select(sa.func.count()).where(c.job_id == job_id, c.state.in_(DONE_STATES))
        with self.meta.read() as conn:
            return int(conn.scalar(query) or 0)

    def copy_skipped(
        self, conn: Connection, job_id: str, base_id: str, keep: Sequence[str], drop: Sequence[str]
    ) -> None:
        """Record as skipped in ``job_id`` the datums ``keep`` of job ``base_id`` (whose other
        completed datums are ``drop``), copying their rows inside the database: nothing per
        datum crosses into Python. Rows of ``drop`` are never touched, so this also works after
        the job recorded some of those itself."""
        c = _datums.c
        names = ["job_id", "datum_id", "state", "hash", "outputs", "inputs"]
        select = sa.select(
            sa.literal(job_id), c.datum_id, sa.literal(DATUM_SKIPPED), c.hash, c.outputs, c.inputs
        ).where(c.job_id == base_id, c.state.in_(DONE_STATES))
        if len(drop) <= 900:
            if drop:
                select = select.where(c.datum_id.not_in(list(drop)))
            conn.execute(_datums.insert().from_select(names, select))
            return
        for start in range(0, len(keep), 900):
            batch = list(keep[start : start + 900])
            conn.execute(_datums.insert().from_select(names, select.where(c.datum_id.in_(batch))))

    def datum_page(
        self, job_id: str, states: Iterable[str] | None = None, offset: int = 0, limit: int = 100
    ) -> tuple[list[DatumRecord], int]:
        """A page of a job's datums (without logs), failed first, then the slowest, then by
        id; and how many there are in all. Sorted and cut in the database, so a page of a job
        with a million datums costs one indexed query."""
        c = _datums.c
        columns = [col for col in _datums.c if col.name != "log"]
        where = [c.job_id == job_id]
        if states is not None:
            where.append(c.state.in_(list(states)))
        failed_first = sa.case((c.state == DATUM_FAILED, 0), else_=1)
        query = (
            sa.select(*columns)
            .where(*where)
            .order_by(failed_first, c.seconds.desc(), c.datum_id)
            .offset(offset)
            .limit(limit)
        )
        count = sa.select(sa.func.count()).select_from(_datums).where(*where)
        with self.meta.read() as conn:
            rows = conn.execute(query).all()
            total = int(conn.scalar(count) or 0)
        return [DatumRecord(**r._asdict()) for r in rows], total

    def datum_states(self, job_id: str) -> dict[str, str]:
        query = sa.select(_datums.c.datum_id, _datums.c.state).where(_datums.c.job_id == job_id)
        with self.meta.read() as conn:
            return dict(conn.execute(query).all())

    def get_datum(self, job_id: str, datum_id: str) -> DatumRecord:
        query = sa.select(_datums).where(_datums.c.job_id == job_id)
        query = query.where(_datums.c.datum_id.startswith(datum_id))
        with self.meta.read() as conn:
            rows = conn.execute(query.limit(2)).all()
        if not rows:
            raise LookupError(f"job {job_id} has no datum {datum_id!r}")
        if len(rows) > 1:
            raise LookupError(f"datum id prefix {datum_id!r} is ambiguous in job {job_id}")
        return DatumRecord(**rows[0]._asdict())

    # ---- traces

    def set_trace(self, conn: Connection, commit_id: str, trace: str) -> None:
        conn.execute(_traces.delete().where(_traces.c.commit_id == commit_id))
        conn.execute(_traces.insert().values(commit_id=commit_id, trace=trace))

    def traces(self, commit_ids: Iterable[str]) -> dict[str, str]:
        """The trace of each commit a job made (a user's commit is its own trace: absent)."""
        ids = list(commit_ids)
        if not ids:
            return {}
        with self.meta.read() as conn:
            rows = conn.execute(
                sa.select(_traces.c.commit_id, _traces.c.trace).where(_traces.c.commit_id.in_(ids))
            )
            return dict(rows.all())

    def commits_of_trace(self, trace: str) -> list[str]:
        with self.meta.read() as conn:
            rows = conn.execute(sa.select(_traces.c.commit_id).where(_traces.c.trace == trace))
            return [r[0] for r in rows]

    # ---- cron

    def last_tick(self, stage: str, input: str) -> float | None:
        with self.meta.read() as conn:
            return conn.scalar(
                sa.select(_cron_ticks.c.last_tick).where(
                    _cron_ticks.c.stage == stage, _cron_ticks.c.input == input
                )
            )

    def set_tick(self, conn: Connection, stage: str, input: str, tick: float) -> None:
        conn.execute(
            _cron_ticks.delete().where(_cron_ticks.c.stage == stage, _cron_ticks.c.input == input)
        )
        conn.execute(_cron_ticks.insert().values(stage=stage, input=input, last_tick=tick))

    # ---- locks

    def claim_lock(
        self, name: str, owner: str, is_dead: Callable[[str, float], bool]
    ) -> str | None:
        """Take (or keep) the lock ``name`` for ``owner``; return the live holder instead when
        another one has it. ``is_dead(holder, heartbeat)`` says whether a holder is gone (its
        lock is then taken over)."""
        now = time.time()
        with self.meta.transaction() as conn:
            row = conn.execute(
                sa.select(_locks.c.owner, _locks.c.heartbeat)
                .where(_locks.c.name == name)
                .with_for_update()
            ).first()
            if row is None:
                conn.execute(_locks.insert().values(name=name, owner=owner, heartbeat=now))
                return None
            if row.owner != owner and not is_dead(row.owner, row.heartbeat):
                return str(row.owner)
            conn.execute(
                _locks.update().where(_locks.c.name == name).values(owner=owner, heartbeat=now)
            )
            return None

    def release_lock(self, name: str, owner: str) -> None:
        with self.meta.transaction() as conn:
            conn.execute(_locks.delete().where(_locks.c.name == name, _locks.c.owner == owner))


def _stage(row: Any) -> StageInfo:
    spec = load_spec(json.loads(row.spec))
    return StageInfo(
        row.name, spec, row.version, row.spec_file, row.created_at, row.updated_at,
        bool(row.stopped),
    )  # fmt: skip


def _job(row: Any) -> JobInfo:
    return JobInfo(
        id=row.id,
        stage=row.stage,
        state=JobState(row.state),
        spec=load_spec(json.loads(row.spec)),
        version=row.version,
        inputs=json.loads(row.inputs),
        output_commit=row.output_commit,
        trace=row.trace,
        total=row.total,
        processed=row.processed,
        skipped=row.skipped,
        failed=row.failed,
        recovered=row.recovered,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        reason=row.reason,
        owner=row.owner,
        heartbeat=row.heartbeat,
        stop_requested=bool(row.stop_requested),
        seq=row.seq,
        skips_recorded=bool(row.skips_recorded),
    )
