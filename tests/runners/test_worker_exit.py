"""Worker processes that exit after a big task instead of freeing its tables (exec/gcpolicy.py).

A worker whose task left more than ``EXIT_AFTER_BYTES`` in dead grouping tables sends its result
with a flag and exits; the executor forks a successor at once. The threshold is set to 0 here so
that every task's worker exits: results stay right, later stages run on new processes, and a
retirement never costs a task one of its attempts.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from headrace.exec import gcpolicy
from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import Create, GroupByKey, Map
from headrace.runners.direct import workers
from headrace.testing.util import assert_that, equal_to

TWO_PROCESSES = {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}


def _note_pid(folder: str, stage: str):
    def fn(x: object) -> object:
        open(os.path.join(folder, f"{stage}-{os.getpid()}"), "w").close()
        return x

    return fn


@pytest.mark.timeout(120)
def test_every_worker_exits_after_its_task_and_the_run_is_still_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "EXIT_AFTER_BYTES", 0)
    with Pipeline(options=PipelineOptions(**TWO_PROCESSES)) as p:
        groups = (
            p
            | Create([(i % 7, i) for i in range(500)])
            | "Before" >> Map(_note_pid(str(tmp_path), "before"))
            | GroupByKey()
            | Map(lambda kv: (kv[0], sorted(kv[1])))
            | "After" >> Map(_note_pid(str(tmp_path), "after"))
        )
        assert_that(groups, equal_to([(k, list(range(k, 500, 7))) for k in range(7)]))
    names = os.listdir(tmp_path)
    before = {n.split("-")[1] for n in names if n.startswith("before-")}
    after = {n.split("-")[1] for n in names if n.startswith("after-")}
    assert before and after
    assert not before & after, "the grouping's readers ran in the writers' processes"


@pytest.mark.timeout(120)
def test_a_retired_worker_does_not_spend_an_attempt_of_the_next_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After every task the worker exits; a reader task then killed once still gets its retry
    (were the retirement taken for a death, the kill would be its second and fail the run)."""
    monkeypatch.setattr(workers, "EXIT_AFTER_BYTES", 0)
    marker = str(tmp_path / "killed-once")

    def kill_once(kv: tuple[int, list[int]]) -> tuple[int, list[int]]:
        if kv[0] == 1:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return (kv[0], sorted(kv[1]))

    with Pipeline(options=PipelineOptions(**TWO_PROCESSES)) as p:
        groups = p | Create([(i % 3, i) for i in range(60)]) | GroupByKey() | Map(kill_once)
        assert_that(groups, equal_to([(k, list(range(k, 60, 3))) for k in range(3)]))
    assert os.path.exists(marker), "the reader never killed its worker: the test proves nothing"


def test_tables_are_kept_only_where_frees_are_deferred_and_within_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gcpolicy, "_defer_frees", False)
    monkeypatch.setattr(gcpolicy, "_graveyard", [])
    monkeypatch.setattr(gcpolicy, "_graveyard_bytes", 0)
    gcpolicy.leave_for_exit({"a": [1]}, 100, limit=1000)
    assert gcpolicy.kept_for_exit() == 0  # this process frees as usual
    gcpolicy.defer_frees_to_exit()
    gcpolicy.leave_for_exit({"a": [1]}, 600, limit=1000)
    gcpolicy.leave_for_exit({"b": [2]}, 600, limit=1000)  # over the limit: freed, not kept
    assert gcpolicy.kept_for_exit() == 600 and len(gcpolicy._graveyard) == 1
    gcpolicy.free_kept()
    assert gcpolicy.kept_for_exit() == 0 and not gcpolicy._graveyard
