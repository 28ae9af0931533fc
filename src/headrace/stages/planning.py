"""Planning a job: its inputs, its datums, and which of them run, are skipped or are reused.

:func:`input_tree` reads cron inputs as the pfs inputs of their tick repos;
:func:`resolve_inputs` pins each input to a finished commit; :func:`plan_datums` computes the
datums and the last successful job's hashes; :func:`make_plan` sorts a job's datums into
recovered, skipped (same hash as in the last successful job, or reusable from a failed job
since) and to run, and finds the outputs to delete. Skipped datums cost a dictionary look-up
each here; their rows are copied inside the database later (:meth:`Catalog.copy_skipped`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from headrace.stages.catalog import (
    DATUM_RECOVERED,
    DATUM_SKIPPED,
    DATUM_SUCCESS,
    FAILURE,
    KILLED,
    SUCCESS,
    Catalog,
    DatumRecord,
    JobInfo,
)
from headrace.stages.datums import (
    EMPTY_INPUT,
    Datum,
    compute_datums,
    datum_id,
    datums_at,
    input_reads,
    matches_of_changes,
    resolve_commits,
)
from headrace.stages.spec import (
    CronInput,
    CrossInput,
    Input,
    PfsInput,
    StageSpec,
    UnionInput,
)
from headrace.store.content import Content
from headrace.store.errors import CommitNotFound, RepoNotFound, StoreError
from headrace.store.store import Store

__all__ = [
    "EMPTY_INPUT",
    "JobError",
    "Plan",
    "cron_repo",
    "empty_inputs",
    "input_repos",
    "input_tree",
    "job_trace",
    "make_plan",
    "plan_datums",
    "resolve_inputs",
    "row",
]


class JobError(RuntimeError):
    """A job could not start: bad inputs, an open input commit, a busy output branch."""


# ---------------------------------------------------------------------------------------------
# Inputs


def cron_repo(stage: str, input_name: str) -> str:
    """The repo a cron input's ticks are committed to: ``<stage>_<input name>``."""
    return f"{stage}_{input_name}"


def input_tree(spec: StageSpec) -> Input:
    """The stage's input with each cron input read as the pfs input of its tick repo."""

    def convert(node: Input) -> Input:
        if isinstance(node, CronInput):
            return PfsInput(repo=cron_repo(spec.name, node.name), glob="/*", name=node.name)
        if isinstance(node, CrossInput | UnionInput):
            return type(node)(tuple(convert(c) for c in node.inputs))
        return node

    return convert(spec.input)


def input_repos(spec: StageSpec) -> list[tuple[str, str, str]]:
    """``(input key, repo, branch)`` of every input the stage reads (cron ticks included): the
    key is the input's name unless a union's inputs share it (:func:`input_keys`)."""
    return input_reads(input_tree(spec))


def resolve_inputs(
    store: Store, spec: StageSpec, commits: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The finished commit id each input of ``spec`` reads, by input name: the head of its
    branch, or what ``commits`` names. Raises :class:`JobError` when an input cannot be read
    or is still open (what a job checks before it starts)."""
    tree = input_tree(spec)
    try:
        resolved = resolve_commits(store, tree, commits)
    except (RepoNotFound, CommitNotFound, StoreError) as e:
        raise JobError(f"stage {spec.name}: cannot read its inputs: {e}") from None
    for name, repo, _branch in input_repos(spec):
        if resolved[name] == EMPTY_INPUT:
            continue
        info = store.inspect_commit(f"{repo}@{resolved[name]}")
        if not info.finished:
            raise JobError(
                f"stage {spec.name}: input {name!r} is at {repo}@{info.id}, which is still open; "
                "finish it (headrace commit finish) before running the stage"
            )
    return resolved


def job_trace(catalog: Catalog, store: Store, spec: StageSpec, inputs: Mapping[str, str]) -> str:
    """The trace of the newest input commit (a user's commit is its own trace)."""
    repos = {name: repo for name, repo, _ in input_repos(spec)}
    infos = [store.inspect_commit(f"{repos[n]}@{c}") for n, c in inputs.items() if c != EMPTY_INPUT]
    if not infos:  # every input is still empty: the job is a trace of its own
        return uuid.uuid4().hex
    newest = max(infos, key=lambda c: (c.finished_at or c.started_at, c.id))
    return catalog.traces([newest.id]).get(newest.id, newest.id)


# ---------------------------------------------------------------------------------------------
# Planning


_Skipped = tuple[str, str, str, str]  # datum id, hash, outputs JSON, inputs JSON
_Known = dict[str, tuple[str, str, str]]  # datum id -> (hash, outputs JSON, inputs JSON)


@dataclass
class Plan:
    """What a job must do, from its datums and the stage's earlier jobs."""

    datums: list[Datum]
    base_job: str | None  # the last successful job: its datums' outputs are in the parent tree
    run: list[Datum] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # base datums to record as skipped
    gone: list[str] = field(default_factory=list)  # base datums whose outputs are deleted
    skipped: list[_Skipped] = field(default_factory=list)  # reused from failed jobs
    restage: list[tuple[str, Content]] = field(default_factory=list)
    deletions: set[str] = field(default_factory=set)
    recovered: int = 0
    skipped_before: int = 0
    total: int = 0  # datums of the job
    skip_count: int = 0  # base datums that stay (their rows are copied as skipped)


def plan_datums(
    catalog: Catalog, spec: StageSpec, inputs: Mapping[str, str], before_seq: int | None = None
) -> tuple[list[Datum], dict[str, str]]:
    """A stage's datums over ``inputs`` and the last successful job's ``datum id -> hash``,
    for previews (``headrace datum list --spec``)."""
    datums, _, base = _datums_and_base(catalog, spec, inputs, before_seq)
    return datums, base


def _datums_and_base(
    catalog: Catalog, spec: StageSpec, inputs: Mapping[str, str], before_seq: int | None
) -> tuple[list[Datum], str | None, dict[str, str]]:
    datums = compute_datums(
        catalog.store, input_tree(spec), inputs, salt=spec.salt, version=spec.version
    )
    base = _base_job(catalog, spec, before_seq)
    if base is None:
        return datums, None, {}
    return datums, base.id, catalog.datum_hashes(base.id)


def _base_job(catalog: Catalog, spec: StageSpec, before_seq: int | None) -> JobInfo | None:
    for job in catalog.list_jobs(spec.name, states=(SUCCESS,), before_seq=before_seq):
        if job.spec.output_branch == spec.output_branch:
            return job
    return None


def make_plan(catalog: Catalog, job: JobInfo, own: Mapping[str, str]) -> Plan:
    """Sort the job's datums into recovered (done by an interrupted run of this job), skipped
    (same hash as in the last successful job, or reusable from a failed one) and to run; and
    find the outputs to delete (those of base datums that vanished or do not stay as they are).
    ``own`` holds the states of the datums this job already recorded.

    This loop runs once per datum of every job, most of them skipped: it stays flat, and what
    is known of skipped datums stays in the database (see :meth:`Catalog.copy_skipped`).
    """
    if not own:
        fast = _incremental_plan(catalog, job)
        if fast is not None:
            return fast
    return _full_plan(catalog, job, own)


def _full_plan(catalog: Catalog, job: JobInfo, own: Mapping[str, str]) -> Plan:
    """:func:`make_plan` by computing every datum of the job."""
    spec = job.spec
    datums, base_job, base = _datums_and_base(catalog, spec, job.inputs, job.seq)
    plan = Plan(datums, base_job)
    plan.total = len(datums)
    every = spec.reprocess == "every_job"
    unchanged = plan.unchanged
    candidates: list[Datum] = []
    get = base.get
    for d in datums:
        datum_id, datum_hash = d[0], d[2]
        same = not every and get(datum_id) == datum_hash
        if same:
            unchanged.append(datum_id)
        if own:
            state = own.get(datum_id)
            if state in (DATUM_SUCCESS, DATUM_RECOVERED):
                plan.recovered += 1
                continue
            if state == DATUM_SKIPPED:
                plan.skipped_before += 1
                continue
        if not same:
            candidates.append(d)
    if len(unchanged) < len(base):
        kept = set(unchanged)
        plan.gone = [i for i in base if i not in kept]
        assert base_job is not None
        for _hash, outputs, _inputs in catalog.datum_details(base_job, plan.gone).values():
            plan.deletions.update(p for p, _, _ in json.loads(outputs))
    plan.skip_count = len(unchanged)
    _settle(catalog, plan, candidates, {} if every else _overlay(catalog, job))
    return plan


def _settle(catalog: Catalog, plan: Plan, candidates: list[Datum], overlay: _Known) -> None:
    """Run the ``candidates`` (new or changed datums), except those that succeeded with the
    same hash in a failed job since the base one (``overlay``): those are skipped and their
    outputs restaged, if gc left the outputs and no two of them wrote one path."""
    reuse: _Known = {}
    restage_hashes: set[str] = set()
    for d in candidates:
        earlier = overlay.get(d.id)
        if earlier is not None and earlier[0] == d.hash:
            reuse[d.id] = earlier
            restage_hashes.update(h for _, h, _ in json.loads(earlier[1]))
        else:
            plan.run.append(d)
    if not reuse:
        return
    known = catalog.store.contents(restage_hashes)
    by_id = {d.id: d for d in plan.datums}
    written: dict[str, int] = {}  # a path two reused datums wrote: both run again
    for _hash, outputs, _inputs in reuse.values():
        for p, _, _ in json.loads(outputs):
            written[p] = written.get(p, 0) + 1
    for key, (datum_hash, outputs, inputs) in reuse.items():
        files = json.loads(outputs)
        if all(h in known and written[p] == 1 for p, h, _ in files):
            plan.skipped.append((key, datum_hash, outputs, inputs))
            plan.restage.extend((p, known[h]) for p, h, _ in files)
        else:
            plan.run.append(by_id[key])


INCREMENTAL_MAX = 900  # changed matches above which a job computes all of its datums


def _incremental_plan(catalog: Catalog, job: JobInfo) -> Plan | None:
    """The plan of a job over one pfs input from the diff of its commit against the base job's:
    only the glob matches holding changed files are computed and compared, so planning costs
    what changed, not what the input holds. None when this does not apply (several inputs,
    ``**`` globs, a new spec version, ``every_job``, no base job, too many changes): the job
    then computes every datum.
    """
    spec = job.spec
    tree = input_tree(spec)
    if not isinstance(tree, PfsInput) or spec.reprocess == "every_job":
        return None
    base = _base_job(catalog, spec, job.seq)
    if base is None or base.version != job.version:
        return None
    old, new = base.inputs.get(tree.name), job.inputs.get(tree.name)
    if old is None or new is None or EMPTY_INPUT in (old, new):
        return None
    store = catalog.store
    changes = store.diff(f"{tree.repo}@{new}", f"{tree.repo}@{old}")
    matches = matches_of_changes(tree, (c.path for c in changes))
    if matches is None or len(matches) > INCREMENTAL_MAX:
        return None
    fresh = datums_at(store, tree, new, matches, spec.salt, job.version)
    ids = {datum_id(tree.name, m): m for m in matches}
    before = catalog.datum_details(base.id, ids)
    plan = Plan(list(fresh.values()), base.id)
    candidates: list[Datum] = []
    for key, match in ids.items():
        d, old_row = fresh.get(match), before.get(key)
        if d is not None and old_row is not None and old_row[0] == d.hash:
            continue  # changed files, same datum (changed back): stays, copied as skipped
        if old_row is not None:
            plan.gone.append(key)
            plan.deletions.update(p for p, _, _ in json.loads(old_row[1]))
        if d is not None:
            candidates.append(d)
    base_total = catalog.count_datums(base.id)
    plan.skip_count = base_total - len(plan.gone)
    plan.total = plan.skip_count + len(candidates)
    _settle(catalog, plan, candidates, _overlay(catalog, job, [d.id for d in candidates]))
    return plan


def _overlay(catalog: Catalog, job: JobInfo, ids: Collection[str] | None = None) -> _Known:
    """Datums (all, or those among ``ids``) that succeeded in failed or killed jobs since the
    last successful one."""
    out: _Known = {}
    for earlier in catalog.list_jobs(job.stage, before_seq=job.seq):
        if earlier.state == SUCCESS:
            break
        if earlier.state in (FAILURE, KILLED) and earlier.version == job.version:
            for key, value in catalog.datum_details(earlier.id, ids).items():
                out.setdefault(key, value)
    return out


def row(job_id: str, d: Datum, state: str, outputs: str = "[]", **extra: Any) -> DatumRecord:
    inputs = json.dumps([[p.name, p.path] for p in d.inputs])
    return DatumRecord(job_id, d.id, state, d.hash, outputs, inputs=inputs, **extra)


def empty_inputs(node: Input) -> Iterable[str]:
    """Names of the pfs inputs laid out as empty files (``empty_files``)."""
    if isinstance(node, PfsInput):
        if node.empty_files:
            yield node.name
    elif not isinstance(node, CronInput):
        for child in node.inputs:
            yield from empty_inputs(child)
