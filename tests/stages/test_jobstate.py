"""The job state machine (headrace.stages.jobstate): every allowed move, every refused one, and
that the catalogue's writers go through it.

The states and their meaning follow Pachyderm's job states (``JOB_CREATED``, ``JOB_RUNNING``,
``JOB_SUCCESS``, ``JOB_FAILURE``, ``JOB_KILLED``, ``JOB_UNRUNNABLE`` in ``src/pps/pps.proto``;
``pps.IsTerminal`` in ``src/internal/ppsutil``): a terminal job never changes state again.
"""

from __future__ import annotations

import itertools

import pytest

from headrace.stages.jobs import kill_job, mark_unrunnable, run_job
from headrace.stages.jobstate import (
    INITIAL,
    MOVES,
    TERMINAL,
    IllegalJobMove,
    JobState,
    check_move,
    parse_state,
)

ALLOWED = {
    (JobState.CREATED, JobState.RUNNING),
    (JobState.CREATED, JobState.FAILURE),
    (JobState.CREATED, JobState.KILLED),
    (JobState.RUNNING, JobState.SUCCESS),
    (JobState.RUNNING, JobState.FAILURE),
    (JobState.RUNNING, JobState.KILLED),
}
PAIRS = list(itertools.product(JobState, JobState))


def test_the_moves_table_is_exactly_the_documented_one():
    assert {(a, b) for a, targets in MOVES.items() for b in targets} == ALLOWED
    assert set(MOVES) == set(JobState)
    assert INITIAL == {JobState.CREATED, JobState.UNRUNNABLE}
    assert all(not MOVES[s] for s in TERMINAL)


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED))
def test_allowed_moves_pass(old, new):
    check_move(old, new)
    check_move(str(old).lower(), str(new))  # plain strings, any case


@pytest.mark.parametrize(("old", "new"), [p for p in PAIRS if p not in ALLOWED])
def test_refused_moves_name_both_states_and_why(old, new):
    with pytest.raises(IllegalJobMove) as e:
        check_move(old, new)
    message = str(e.value)
    assert f"from {old} to {new}" in message
    if old in TERMINAL:
        assert "is final" in message
    elif old == new:
        assert "already" in message
    else:
        assert "may move to" in message


def test_an_unknown_state_is_named():
    with pytest.raises(ValueError, match="unknown job state 'DONE'"):
        parse_state("DONE")
    assert parse_state("killed") is JobState.KILLED


def _stage(kit):
    mod = kit.module("def run(inputs, output):\n    (output / 'x').write_text('x')\n")
    kit.store.create_repo("data")
    kit.store.put_files("data@master", [("/a.txt", b"a")])
    return kit.stage({
        "name": "st",
        "input": {"pfs": {"repo": "data", "glob": "/*"}},
        "transform": {"python": f"{mod}:run"},
    })  # fmt: skip


def test_catalog_moves_a_job_and_refuses_an_illegal_move(kit):
    stage = _stage(kit)
    job = run_job(kit.catalog, stage)
    assert job.state == JobState.SUCCESS
    assert isinstance(job.state, JobState)
    with kit.catalog.transaction() as conn, pytest.raises(IllegalJobMove, match="SUCCESS is final"):
        kit.catalog.move_job(conn, job.id, JobState.RUNNING)
    assert kit.catalog.get_job(job.id).state == JobState.SUCCESS


def test_state_is_never_written_around_the_machine(kit):
    stage = _stage(kit)
    job = run_job(kit.catalog, stage)
    with kit.catalog.transaction() as conn, pytest.raises(TypeError, match="move_job"):
        kit.catalog.update_job(conn, job.id, state=JobState.CREATED)
    with kit.catalog.transaction() as conn, pytest.raises(IllegalJobMove, match="created SUCCESS"):
        kit.catalog.create_job(conn, stage, {}, "t", state=JobState.SUCCESS)


def test_kill_and_unrunnable_follow_the_machine(kit):
    from headrace.stages.jobs import create_job

    stage = _stage(kit)
    job_id = create_job(kit.catalog, stage)
    assert kit.catalog.get_job(job_id).state == JobState.CREATED
    killed = kill_job(kit.catalog, job_id, "stopped")
    assert (killed.state, killed.reason) == (JobState.KILLED, "stopped")
    assert kill_job(kit.catalog, job_id, "again").reason == "stopped"  # an ended job stays
    other = mark_unrunnable(kit.catalog, stage, "trace", "upstream failed")
    assert kit.catalog.get_job(other).state == JobState.UNRUNNABLE
    with kit.catalog.transaction() as conn, pytest.raises(IllegalJobMove):
        kit.catalog.move_job(conn, other, JobState.RUNNING)
