"""The history of pipeline runs, kept in the store's own SQL database so it survives restarts.

A run's events (:mod:`headrace.runners.events`, as JSON from :mod:`headrace.service.wire`) are
folded into three tables by :meth:`RunHistory.record`:

``service_runs``       ``id`` (the run id), ``state`` (Beam's names: ``STOPPED`` when submitted,
                       ``RUNNING``, then ``DONE``, ``FAILED`` or ``CANCELLED``; ``CANCELLING``
                       once a cancel was asked and not yet obeyed; ``DRAINING`` once a drain
                       of a streaming run was asked), ``streaming``, ``source``
                       (which process reported it), ``created_at``, ``started_at``,
                       ``finished_at``, ``updated_at``, ``error``, ``cancel_requested``; for a
                       failed run, when the runner knew them, ``failed_step`` (the transform
                       whose code raised), ``failed_element`` (a short repr) and
                       ``traceback``; ``drain_requested`` (these columns a database of an older
                       service gains on open).
``service_run_steps``  per run and step (a batch run's fused stages, a streaming run's steps):
                       ``position``, ``state`` (``pending``, ``running``, ``done``,
                       ``failed``), ``elements_in``, ``elements_out``, ``seconds``, ``tasks``,
                       ``tasks_done``, ``spills``, ``counters`` (JSON: ``namespace/name`` ->
                       value, user metrics), ``watermark_us``, ``depends_on`` (JSON: positions
                       of the steps it reads from, when the run's plan is known).
``service_run_transforms`` per run and transform of a batch run's graph (when the process sent
                       it): ``position`` (parents before their parts), ``label``, ``kind``,
                       ``parent`` (the composite's id), ``composite``, ``stage`` (position of
                       the step running it), ``is_root`` (it is that step's input), ``reads``
                       (JSON: ids of the transforms it reads), ``elements_in``,
                       ``elements_out`` (summed over the tasks; a step's input count for a
                       root), ``seconds`` (its own time summed over the tasks).
``service_run_events`` per run, in arrival order (``seq``): state changes, failures and user
                       log records with the step that wrote them.

Only the service writes these tables (one writer: the process that receives the events); the
state moves ``STOPPED -> RUNNING -> DONE | FAILED | CANCELLED`` as the run reports it, and
``cancel`` only sets ``cancel_requested`` (the process running the pipeline learns it in the
reply to its next batch of events and cancels the run itself); ``drain`` likewise sets
``drain_requested`` of a streaming run, which its process then drains.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from headrace.runners.events import RunEvent
from headrace.service.wire import EVENT_TYPES, encode_event
from headrace.store.sql import SQLDatabase

__all__ = [
    "RUN_STATES",
    "TERMINAL_STATES",
    "BadEvent",
    "NotDrainable",
    "RunHistory",
    "RunNotFound",
    "RunRecord",
    "RunRecorder",
    "StepRecord",
    "TransformRecord",
]

RUN_STATES = (
    "STOPPED", "RUNNING", "DRAINING", "CANCELLING", "DONE", "FAILED", "CANCELLED", "DRAINED",
)  # fmt: skip
TERMINAL_STATES = frozenset({"DONE", "FAILED", "CANCELLED", "DRAINED"})

_META = sa.MetaData()
_runs = sa.Table(
    "service_runs",
    _META,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("streaming", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("drain_requested", sa.Boolean),
    sa.Column("failed_step", sa.Text),
    sa.Column("failed_element", sa.Text),
    sa.Column("traceback", sa.Text),
    sa.Index("service_runs_state", "state"),
)
_steps = sa.Table(
    "service_run_steps",
    _META,
    sa.Column("run_id", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(500), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("elements_in", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("elements_out", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("seconds", sa.Double, nullable=False, server_default="0"),
    sa.Column("tasks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("tasks_done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("spills", sa.Integer, nullable=False, server_default="0"),
    sa.Column("counters", sa.Text, nullable=False, server_default="{}"),
    sa.Column("watermark_us", sa.BigInteger),
    sa.Column("depends_on", sa.Text, nullable=False, server_default="[]"),
)
_transforms = sa.Table(
    "service_run_transforms",
    _META,
    sa.Column("run_id", sa.String(100), primary_key=True),
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("parent", sa.String(100)),
    sa.Column("composite", sa.Boolean, nullable=False),
    sa.Column("stage", sa.Integer),
    sa.Column("is_root", sa.Boolean, nullable=False),
    sa.Column("reads", sa.Text, nullable=False, server_default="[]"),
    sa.Column("elements_in", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("elements_out", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("seconds", sa.Double, nullable=False, server_default="0"),
)
_events = sa.Table(
    "service_run_events",
    _META,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(100), nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # state, log
    sa.Column("step", sa.String(500)),
    sa.Column("level", sa.Integer, nullable=False, server_default="20"),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("service_run_events_run", "run_id", "seq"),
)


class RunNotFound(LookupError):
    """No run with that id."""


class NotDrainable(ValueError):
    """A drain asked of a run that cannot drain (a batch run)."""


class BadEvent(ValueError):
    """An event that is not one the service knows, or lacks a field."""


@dataclass(frozen=True)
class StepRecord:
    name: str
    position: int
    state: str
    elements_in: int
    elements_out: int
    seconds: float
    tasks: int
    tasks_done: int
    spills: int
    counters: dict[str, int]
    watermark_us: int | None
    depends_on: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class TransformRecord:
    id: str
    position: int
    label: str
    kind: str
    parent: str | None
    composite: bool
    stage: int | None
    is_root: bool
    reads: list[str]
    elements_in: int
    elements_out: int
    seconds: float = 0.0


@dataclass(frozen=True)
class RunRecord:
    id: str
    state: str
    streaming: bool
    source: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    error: str
    cancel_requested: bool
    steps: list[StepRecord] = field(default_factory=list)
    transforms: list[TransformRecord] = field(default_factory=list)
    """The graph's transforms (only :meth:`RunHistory.get` fills them)."""
    failed_step: str | None = None
    failed_element: str | None = None
    traceback: str | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else time.time()
        return end - self.started_at

    @property
    def elements(self) -> int:
        """Elements the run's steps read (summed over steps)."""
        return sum(s.elements_in for s in self.steps)


def _check(event: Mapping[str, Any]) -> str:
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        raise BadEvent(f"unknown event type {kind!r}; known: {', '.join(EVENT_TYPES)}")
    missing = [f for f in ("run_id", "at", *EVENT_TYPES[kind]) if f not in event]
    if missing:
        raise BadEvent(f"{kind} event lacks field(s) {', '.join(missing)}")
    if not isinstance(event["run_id"], str) or not event["run_id"]:
        raise BadEvent(f"{kind} event: run_id must be a non-empty string")
    return str(kind)


class RunHistory:
    """The run tables of the database ``meta`` (created on first use)."""

    def __init__(self, meta: SQLDatabase) -> None:
        self.meta = meta
        with meta.transaction() as conn:
            _META.create_all(conn, checkfirst=True)
            _add_missing_columns(conn)

    # ---- recording

    def record(self, events: Iterable[Mapping[str, Any]], source: str = "") -> list[str]:
        """Fold ``events`` into the tables in one transaction; every event is checked first,
        so a bad batch records nothing. Returns the ids of the runs among them whose cancel was
        requested and which have not ended."""
        batch = list(events)
        kinds = [_check(e) for e in batch]
        runs: set[str] = set()
        with self.meta.transaction() as conn:
            for kind, event in zip(kinds, batch):
                runs.add(event["run_id"])
                self._apply(conn, kind, event, source)
            if not runs:
                return []
            rows = conn.execute(
                sa.select(_runs.c.id).where(
                    _runs.c.id.in_(sorted(runs)),
                    _runs.c.cancel_requested,
                    _runs.c.state.not_in(list(TERMINAL_STATES)),
                )
            )
            return [r[0] for r in rows]

    def _apply(self, conn: Connection, kind: str, e: Mapping[str, Any], source: str) -> None:
        run_id, at = e["run_id"], float(e["at"])
        if kind == "RunSubmitted":
            conn.execute(_events.delete().where(_events.c.run_id == run_id))
            conn.execute(_transforms.delete().where(_transforms.c.run_id == run_id))
            conn.execute(_steps.delete().where(_steps.c.run_id == run_id))
            conn.execute(_runs.delete().where(_runs.c.id == run_id))
            conn.execute(
                _runs.insert().values(
                    id=run_id, state="STOPPED", streaming=bool(e["streaming"]), source=source,
                    created_at=at, updated_at=at,
                )
            )  # fmt: skip
            depends = e.get("depends_on") or []
            for position, name in enumerate(e["stages"]):
                reads = depends[position] if position < len(depends) else []
                conn.execute(
                    _steps.insert().values(
                        run_id=run_id, name=str(name), position=position, state="pending",
                        depends_on=json.dumps([int(d) for d in reads]),
                    )
                )  # fmt: skip
            rows = [
                {
                    "run_id": run_id, "id": str(t["id"]), "position": i, "label": str(t["label"]),
                    "kind": str(t["kind"]), "parent": t.get("parent"),
                    "composite": bool(t.get("composite")), "stage": t.get("stage"),
                    "is_root": bool(t.get("root")), "reads": json.dumps(list(t.get("reads", []))),
                }
                for i, t in enumerate(e.get("transforms") or [])
            ]  # fmt: skip
            if rows:
                conn.execute(_transforms.insert(), rows)
            self._event(conn, run_id, at, "state", None, "submitted")
            return
        if not self._known(conn, run_id):  # events of a run whose submission was not seen
            conn.execute(
                _runs.insert().values(
                    id=run_id, state="RUNNING", streaming=False, source=source, created_at=at,
                    started_at=at, updated_at=at,
                )
            )  # fmt: skip
        run = _runs.update().where(_runs.c.id == run_id)
        if kind == "RunStarted":
            conn.execute(run.values(state="RUNNING", started_at=at, updated_at=at))
            self._event(conn, run_id, at, "state", None, "running")
        elif kind == "RunFinished":
            conn.execute(
                run.values(
                    state=e["state"], finished_at=at, updated_at=at, error=e["error"] or "",
                    failed_step=e.get("step"), failed_element=e.get("element"),
                    traceback=e.get("traceback"),
                )
            )  # fmt: skip
            message = str(e["state"]).lower() + (f": {e['error']}" if e["error"] else "")
            self._event(conn, run_id, at, "state", None, message, 40 if e["error"] else 20)
        elif kind == "LogRecord":
            self._event(conn, run_id, at, "log", e["step"], str(e["message"]), int(e["level"]))
            conn.execute(run.values(updated_at=at))
        else:
            self._step_event(conn, kind, e, run_id)
            conn.execute(run.values(updated_at=at))

    def _step_event(self, conn: Connection, kind: str, e: Mapping[str, Any], run_id: str) -> None:
        name = str(e["step"] if kind == "Watermark" else e["name"])
        where = (_steps.c.run_id == run_id) & (_steps.c.name == name)
        row = conn.execute(sa.select(_steps).where(where)).first()
        if row is None:
            position = conn.scalar(
                sa.select(sa.func.count()).select_from(_steps).where(_steps.c.run_id == run_id)
            )
            conn.execute(
                _steps.insert().values(
                    run_id=run_id, name=name, position=int(position or 0), state="running"
                )
            )
            row = conn.execute(sa.select(_steps).where(where)).one()
        update = _steps.update().where(where)
        if kind == "StageStarted":
            conn.execute(update.values(state="running", tasks=int(e["tasks"])))
        elif kind == "StageUpdated":
            conn.execute(
                update.values(
                    state="running" if row.state == "pending" else row.state,
                    elements_in=int(e["elements_in"]),
                    elements_out=int(e["elements_out"]),
                )
            )
        elif kind == "TaskFinished":
            for tid, counts in (e.get("operators") or {}).items():
                n_in, n_out = int(counts[0]), int(counts[1])
                spent = float(counts[2]) if len(counts) > 2 else 0.0
                conn.execute(
                    _transforms.update()
                    .where(_transforms.c.run_id == run_id, _transforms.c.id == str(tid))
                    .values(
                        elements_in=_transforms.c.elements_in + n_in,
                        elements_out=_transforms.c.elements_out + n_out,
                        seconds=_transforms.c.seconds + spent,
                    )
                )
            counters = json.loads(row.counters)
            for _step, namespace, metric, value in e["metrics"]:
                key = f"{namespace}/{metric}"
                counters[key] = counters.get(key, 0) + value
            conn.execute(
                update.values(
                    tasks_done=row.tasks_done + 1,
                    seconds=row.seconds + float(e["seconds"]),
                    counters=json.dumps(counters, sort_keys=True),
                )
            )
        elif kind == "StageFinished":
            conn.execute(
                update.values(
                    state=str(e["state"]),
                    elements_in=int(e["elements_in"]),
                    elements_out=int(e["elements_out"]),
                    seconds=float(e["seconds"]),
                    tasks=int(e["tasks"]),
                    spills=int(e["spills"]),
                )
            )
            if e["state"] == "failed":
                self._event(conn, run_id, float(e["at"]), "state", name, "step failed", 40)
            # a step's input is its root transform's output (a source's reads, a shuffle's groups)
            conn.execute(
                _transforms.update()
                .where(
                    _transforms.c.run_id == run_id,
                    _transforms.c.stage == row.position,
                    _transforms.c.is_root,
                )
                .values(elements_in=int(e["elements_in"]), elements_out=int(e["elements_in"]))
            )
        elif kind == "Watermark":
            conn.execute(update.values(watermark_us=int(e["watermark_us"])))

    @staticmethod
    def _known(conn: Connection, run_id: str) -> bool:
        return conn.scalar(sa.select(_runs.c.id).where(_runs.c.id == run_id)) is not None

    @staticmethod
    def _event(
        conn: Connection, run_id: str, at: float, kind: str, step: str | None, message: str,
        level: int = 20,
    ) -> None:  # fmt: skip
        conn.execute(
            _events.insert().values(
                run_id=run_id, at=at, kind=kind, step=step, level=level, message=message
            )
        )

    # ---- steering

    def drains_requested(self, run_ids: Iterable[str]) -> list[str]:
        """Those of ``run_ids`` whose drain was requested and which have not ended."""
        wanted = sorted(set(run_ids))
        if not wanted:
            return []
        with self.meta.read() as conn:
            rows = conn.execute(
                sa.select(_runs.c.id).where(
                    _runs.c.id.in_(wanted),
                    _runs.c.drain_requested == sa.true(),
                    _runs.c.state.not_in(list(TERMINAL_STATES)),
                )
            )
            return [r[0] for r in rows]

    def request_drain(self, run_id: str) -> RunRecord:
        """Ask the process of a running streaming run to drain it (see the module docstring);
        a batch run cannot be drained (:class:`NotDrainable`), an ended one is left as it is."""
        with self.meta.transaction() as conn:
            row = conn.execute(
                sa.select(_runs.c.state, _runs.c.streaming).where(_runs.c.id == run_id)
            ).first()
            if row is None:
                raise RunNotFound(f"no pipeline run {run_id!r}")
            if not row.streaming:
                raise NotDrainable(
                    f"pipeline run {run_id!r} is a batch run: only streaming runs drain (their "
                    "sources stop and their windows fire); cancel it instead"
                )
            if row.state not in TERMINAL_STATES and row.state != "CANCELLING":
                now = time.time()
                conn.execute(
                    _runs.update()
                    .where(_runs.c.id == run_id)
                    .values(drain_requested=True, state="DRAINING", updated_at=now)
                )
                self._event(conn, run_id, now, "state", None, "drain requested")
        return self.get(run_id)

    def request_cancel(self, run_id: str) -> RunRecord:
        """Ask the run's process to cancel it (a run already ended is left as it is)."""
        with self.meta.transaction() as conn:
            state = conn.scalar(sa.select(_runs.c.state).where(_runs.c.id == run_id))
            if state is None:
                raise RunNotFound(f"no pipeline run {run_id!r}")
            if state not in TERMINAL_STATES:
                now = time.time()
                conn.execute(
                    _runs.update()
                    .where(_runs.c.id == run_id)
                    .values(cancel_requested=True, state="CANCELLING", updated_at=now)
                )
                self._event(conn, run_id, now, "state", None, "cancel requested")
        return self.get(run_id)

    # ---- queries

    def get(self, run_id: str) -> RunRecord:
        with self.meta.read() as conn:
            row = conn.execute(sa.select(_runs).where(_runs.c.id == run_id)).first()
            if row is None:
                raise RunNotFound(f"no pipeline run {run_id!r}")
            steps = self._steps(conn, [run_id])
            query = (
                sa.select(_transforms)
                .where(_transforms.c.run_id == run_id)
                .order_by(_transforms.c.position)
            )
            transforms = [
                TransformRecord(
                    t.id, t.position, t.label, t.kind, t.parent, bool(t.composite), t.stage,
                    bool(t.is_root), json.loads(t.reads), t.elements_in, t.elements_out,
                    t.seconds,
                )
                for t in conn.execute(query)
            ]  # fmt: skip
        return _run(row, steps.get(run_id, []), transforms)

    def list_runs(
        self, states: Iterable[str] | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[RunRecord], int]:
        """Runs, running ones first, then newest first; and how many match in all."""
        query = sa.select(_runs)
        count = sa.select(sa.func.count()).select_from(_runs)
        if states is not None:
            wanted = list(states)
            query = query.where(_runs.c.state.in_(wanted))
            count = count.where(_runs.c.state.in_(wanted))
        ended = sa.case((_runs.c.state.in_(list(TERMINAL_STATES)), 1), else_=0)
        query = query.order_by(ended, _runs.c.created_at.desc()).limit(limit).offset(offset)
        with self.meta.read() as conn:
            rows = conn.execute(query).all()
            total = int(conn.scalar(count) or 0)
            steps = self._steps(conn, [r.id for r in rows])
        return [_run(r, steps.get(r.id, [])) for r in rows], total

    def events(
        self, run_id: str, kind: str | None = None, after: int = 0, limit: int = 500
    ) -> list[dict[str, Any]]:
        """A run's events with ``seq`` above ``after``, oldest first (follow by passing the
        last ``seq`` seen)."""
        self.get(run_id)
        query = sa.select(_events).where(_events.c.run_id == run_id, _events.c.seq > after)
        if kind is not None:
            query = query.where(_events.c.kind == kind)
        query = query.order_by(_events.c.seq).limit(limit)
        with self.meta.read() as conn:
            return [dict(r._asdict()) for r in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        """How many runs are in each state."""
        query = sa.select(_runs.c.state, sa.func.count()).group_by(_runs.c.state)
        with self.meta.read() as conn:
            return {state: int(n) for state, n in conn.execute(query)}

    def elements_total(self) -> int:
        with self.meta.read() as conn:
            return int(conn.scalar(sa.select(sa.func.sum(_steps.c.elements_in))) or 0)

    @staticmethod
    def _steps(conn: Connection, run_ids: list[str]) -> dict[str, list[StepRecord]]:
        out: dict[str, list[StepRecord]] = {}
        if not run_ids:
            return out
        query = sa.select(_steps).where(_steps.c.run_id.in_(run_ids)).order_by(_steps.c.position)
        for r in conn.execute(query):
            out.setdefault(r.run_id, []).append(
                StepRecord(
                    r.name, r.position, r.state, r.elements_in, r.elements_out, r.seconds,
                    r.tasks, r.tasks_done, r.spills, json.loads(r.counters), r.watermark_us,
                    json.loads(r.depends_on),
                )
            )  # fmt: skip
        return out


def _run(
    row: Any, steps: list[StepRecord], transforms: list[TransformRecord] | None = None
) -> RunRecord:
    return RunRecord(
        row.id, row.state, bool(row.streaming), row.source, row.created_at, row.started_at,
        row.finished_at, row.updated_at, row.error, bool(row.cancel_requested), steps,
        transforms or [], row.failed_step, row.failed_element, row.traceback,
    )  # fmt: skip


def _add_missing_columns(conn: Connection) -> None:
    """Columns added to the run tables since a database was made (all nullable) are added."""
    inspector = sa.inspect(conn)
    for table in (_runs,):
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


class RunRecorder:
    """A run-event listener that records the runs of this process in ``history`` directly
    (what the service does with the events a remote process posts).

    >>> import tempfile
    >>> from headrace.runners.events import RunStarted, RunSubmitted, listening, emit
    >>> from headrace.store.store import Store
    >>> store = Store.open(tempfile.mkdtemp())
    >>> history = RunHistory(store.meta)
    >>> with listening(RunRecorder(history)):
    ...     emit(RunSubmitted("run-1", streaming=False, stages=("Read",)))
    ...     emit(RunStarted("run-1"))
    >>> history.get("run-1").state
    'RUNNING'
    """

    def __init__(self, history: RunHistory, source: str = "") -> None:
        self.history = history
        self.source = source

    def __call__(self, event: RunEvent) -> None:
        self.history.record([encode_event(event)], self.source)
