"""The states of a stage job and the moves between them: the job state machine.

A job (one run of a stage over one set of input commits, :mod:`headrace.stages.jobs`) is in
one :class:`JobState`. It is born in one of :data:`INITIAL`, and then moves only along
:data:`MOVES`::

    CREATED ──> RUNNING ──> SUCCESS
       │           ├──────> FAILURE
       │           └──────> KILLED
       ├──────────────────> FAILURE      (its inputs or output branch could not be used)
       └──────────────────> KILLED       (stopped, or interrupted, before it started)

    UNRUNNABLE                           (born ended: an upstream job failed)

``CREATED``: recorded, not started (no datum has run). ``RUNNING``: its output commit is open
and its datums run; a RUNNING job whose process died is resumed (it stays RUNNING) by
:func:`~headrace.stages.jobs.resume_job`. ``SUCCESS``: its output commit is finished.
``FAILURE`` / ``KILLED``: its output commit was deleted; nothing of it is visible.
``UNRUNNABLE``: never ran. The last four are :data:`TERMINAL`: a job never leaves them, and
a job never moves to the state it is in.

The one function that makes a move is :meth:`headrace.stages.catalog.Catalog.move_job`: it reads
the job's state in the transaction that writes the new one and refuses an illegal move with
:class:`IllegalJobMove` (via :func:`check_move`), so two processes racing to end one job cannot
both win. :meth:`~headrace.stages.catalog.Catalog.update_job` refuses to write ``state``, and
:meth:`~headrace.stages.catalog.Catalog.create_job` accepts only an :data:`INITIAL` state.

>>> check_move("CREATED", "RUNNING")
>>> check_move(JobState.SUCCESS, JobState.RUNNING)
Traceback (most recent call last):
...
headrace.stages.jobstate.IllegalJobMove: a job cannot move from SUCCESS to RUNNING: SUCCESS is final
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "INITIAL",
    "MOVES",
    "TERMINAL",
    "IllegalJobMove",
    "JobState",
    "check_move",
    "parse_state",
]


class JobState(StrEnum):
    """The state of a stage job; each member equals its name as a string (``"RUNNING"``)."""

    CREATED = "CREATED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    KILLED = "KILLED"
    UNRUNNABLE = "UNRUNNABLE"


INITIAL = frozenset({JobState.CREATED, JobState.UNRUNNABLE})
TERMINAL = frozenset({JobState.SUCCESS, JobState.FAILURE, JobState.KILLED, JobState.UNRUNNABLE})
MOVES: dict[JobState, frozenset[JobState]] = {
    JobState.CREATED: frozenset({JobState.RUNNING, JobState.FAILURE, JobState.KILLED}),
    JobState.RUNNING: frozenset({JobState.SUCCESS, JobState.FAILURE, JobState.KILLED}),
    JobState.SUCCESS: frozenset(),
    JobState.FAILURE: frozenset(),
    JobState.KILLED: frozenset(),
    JobState.UNRUNNABLE: frozenset(),
}


class IllegalJobMove(RuntimeError):
    """A job was asked to move to a state the state machine does not allow from its own."""


def parse_state(value: str) -> JobState:
    """``value`` (any case) as a :class:`JobState`; ValueError naming the states otherwise.

    >>> parse_state("running")
    <JobState.RUNNING: 'RUNNING'>
    """
    try:
        return JobState(value.upper())
    except ValueError:
        names = ", ".join(s.lower() for s in JobState)
        raise ValueError(f"unknown job state {value!r}: use one of {names}") from None


def check_move(old: str, new: str) -> None:
    """Return if a job in state ``old`` may move to ``new``; raise :class:`IllegalJobMove`
    saying why not otherwise."""
    source, target = parse_state(old), parse_state(new)
    if target in MOVES[source]:
        return
    if source in TERMINAL:
        why = f"{source} is final"
    elif source == target:
        why = f"it is already {source}"
    else:
        allowed = ", ".join(sorted(MOVES[source]))
        why = f"from {source} it may move to {allowed}"
    raise IllegalJobMove(f"a job cannot move from {source} to {target}: {why}")
