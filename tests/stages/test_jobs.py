"""Jobs: incremental runs, retries, timeouts, duplicate outputs, atomic output commits."""

from __future__ import annotations

import json

import pytest

from headrace.stages.catalog import FAILURE, KILLED, SUCCESS
from headrace.stages.jobs import run_job
from headrace.stages.planning import JobError
from headrace.store.errors import CommitNotFound

UPPER = """
def run(inputs, output):
    for f in sorted(inputs["data"].rglob("*")):
        if f.is_file():
            rel = f.relative_to(inputs["data"])
            target = output / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.read_text().upper())
            print("wrote", rel)
"""


def _upper_stage(kit, **extra):
    mod = kit.module(UPPER)
    spec = {
        "name": "up",
        "input": {"pfs": {"repo": "data", "glob": "/*"}},
        "transform": {"python": f"{mod}:run"},
        **extra,
    }
    return kit.stage(spec)


def _data(kit, files):
    kit.store.create_repo("data")
    kit.store.put_files("data@master", list(files.items()))


def test_first_job_processes_every_datum_and_records_provenance(kit):
    _data(kit, {f"/f{i}.txt": f"hello {i}".encode() for i in range(5)})
    _upper_stage(kit, parallelism=2)
    job = run_job(kit.catalog, "up")
    assert job.state == SUCCESS, job.reason
    assert (job.total, job.processed, job.skipped, job.failed) == (5, 5, 0, 0)
    assert kit.files("up@master") == {f"/f{i}.txt": f"HELLO {i}".encode() for i in range(5)}
    out = kit.store.inspect_commit("up@master")
    assert out.id == job.output_commit and out.origin == "AUTO"
    data_head = kit.store.inspect_commit("data@master").id
    assert [c.id for c in kit.store.provenance("up@master")] == [data_head]
    assert job.version in out.message and job.id in out.message
    assert job.trace == data_head  # a user's commit is its own trace
    assert kit.catalog.traces([out.id]) == {out.id: data_head}
    rows = kit.catalog.datums(job.id, with_logs=True)
    assert {r.state for r in rows} == {"success"}
    assert all("wrote" in r.log for r in rows)
    assert sorted(p for r in rows for p, _, _ in r.output_files()) == sorted(
        f"/f{i}.txt" for i in range(5)
    )


def test_add_modify_delete_rerun_exactly_the_right_datums(kit):
    _data(kit, {"/a.txt": b"a", "/b.txt": b"b", "/c.txt": b"c"})
    _upper_stage(kit)
    assert run_job(kit.catalog, "up").processed == 3

    kit.store.put_files("data@master", [("/d.txt", b"d")])
    job = run_job(kit.catalog, "up")
    assert (job.processed, job.skipped, job.total) == (1, 3, 4)
    processed = kit.catalog.datums(job.id, states=("success",))
    assert [json.loads(r.inputs) for r in processed] == [[["data", "/d.txt"]]]

    kit.store.put_files("data@master", [("/b.txt", b"bee")])
    job = run_job(kit.catalog, "up")
    assert (job.processed, job.skipped) == (1, 3)
    assert kit.store.get_file("up@master:/b.txt") == b"BEE"

    kit.store.delete_file("data@master:/a.txt")
    job = run_job(kit.catalog, "up")
    assert (job.processed, job.skipped, job.total) == (0, 3, 3)
    assert set(kit.files("up@master")) == {"/b.txt", "/c.txt", "/d.txt"}

    job = run_job(kit.catalog, "up")  # nothing changed: everything skipped
    assert (job.processed, job.skipped) == (0, 3)


def test_changed_salt_or_transform_reruns_everything(kit):
    _data(kit, {"/a.txt": b"a", "/b.txt": b"b"})
    stage = _upper_stage(kit)
    run_job(kit.catalog, "up")
    spec = stage.spec.to_dict()
    spec["salt"] = "v2"
    kit.stage(spec, update=True)
    job = run_job(kit.catalog, "up")
    assert (job.processed, job.skipped) == (2, 0)


def test_reprocess_every_job_skips_nothing(kit):
    _data(kit, {"/a.txt": b"a", "/b.txt": b"b"})
    _upper_stage(kit, reprocess="every_job")
    run_job(kit.catalog, "up")
    job = run_job(kit.catalog, "up")
    assert (job.processed, job.skipped) == (2, 0)
    assert kit.files("up@master") == {"/a.txt": b"A", "/b.txt": b"B"}


def test_a_datum_failing_once_is_retried(kit, tmp_path):
    marker = tmp_path / "attempts"
    mod = kit.module(
        f"""
        from pathlib import Path
        def run(inputs, output):
            m = Path({str(marker)!r})
            n = int(m.read_text()) if m.exists() else 0
            m.write_text(str(n + 1))
            if n == 0:
                raise RuntimeError("flaky the first time")
            (output / "ok.txt").write_text("ok")
        """
    )
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/"}},
            "transform": {"python": f"{mod}:run"},
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == SUCCESS
    (row,) = kit.catalog.datums(job.id)
    assert row.attempts == 2
    assert kit.files("s@master") == {"/ok.txt": b"ok"}


def test_a_failing_datum_fails_the_job_and_nothing_is_visible(kit):
    mod = kit.module(
        """
        def run(inputs, output):
            text = next(inputs["data"].rglob("*.txt")).read_text()
            print("looking at", text)
            if text == "bad":
                raise ValueError("cannot handle " + text)
            (output / (text + ".out")).write_text(text)
        """
    )
    _data(kit, {"/a.txt": b"a", "/b.txt": b"bad"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"python": f"{mod}:run"},
            "datum_tries": 2,
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == FAILURE
    assert "1 of 2 datums failed after 2 tries" in job.reason
    assert "(data:/b.txt): ValueError: cannot handle bad" in job.reason
    assert "ValueError: cannot handle bad" in job.reason
    with pytest.raises(CommitNotFound):
        kit.store.inspect_commit("s@master")  # the output commit was removed
    (failed,) = kit.catalog.datums(job.id, states=("failed",), with_logs=True)
    assert failed.attempts == 2
    assert "ValueError: cannot handle bad" in failed.error
    assert "run" in failed.error and "worker.py" not in failed.error  # the user's frames only
    assert "looking at bad" in failed.log


def test_datums_that_succeeded_in_a_failed_job_are_reused(kit, tmp_path):
    fixed = tmp_path / "fixed"
    mod = kit.module(
        f"""
        from pathlib import Path
        def run(inputs, output):
            f = next(inputs["data"].rglob("*.txt"))
            if f.read_text() == "bad" and not Path({str(fixed)!r}).exists():
                raise ValueError("not yet")
            (output / f.name).write_text(f.read_text() + "!")
        """
    )
    _data(kit, {"/a.txt": b"a", "/b.txt": b"bad", "/c.txt": b"c"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"python": f"{mod}:run"},
            "datum_tries": 1,
        }
    )
    first = run_job(kit.catalog, "s")
    assert (first.state, first.processed, first.failed) == (FAILURE, 2, 1)
    fixed.write_text("")
    job = run_job(kit.catalog, "s")
    assert job.state == SUCCESS
    assert (job.processed, job.skipped) == (1, 2)
    assert kit.files("s@master") == {"/a.txt": b"a!", "/b.txt": b"bad!", "/c.txt": b"c!"}


def test_datum_timeout_kills_the_transform(kit):
    mod = kit.module(
        """
        import time
        def run(inputs, output):
            time.sleep(30)
        """
    )
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/"}},
            "transform": {"python": f"{mod}:run"},
            "datum_timeout": "0.5s",
            "datum_tries": 2,
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == FAILURE
    (row,) = kit.catalog.datums(job.id)
    assert row.attempts == 2
    assert "datum_timeout" in row.error
    assert job.seconds is not None and job.seconds < 10


def test_job_timeout_stops_the_job(kit):
    mod = kit.module(
        """
        import time
        def run(inputs, output):
            time.sleep(30)
        """
    )
    _data(kit, {"/a.txt": b"a", "/b.txt": b"b"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"python": f"{mod}:run"},
            "job_timeout": "1s",
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == FAILURE
    assert job.reason.startswith("job_timeout")
    assert job.seconds is not None and job.seconds < 10


def test_two_datums_writing_one_path_fail_naming_both(kit):
    mod = kit.module(
        """
        def run(inputs, output):
            (output / "same.txt").write_text("x")
        """
    )
    _data(kit, {"/a.txt": b"a", "/b.txt": b"b"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"python": f"{mod}:run"},
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == FAILURE
    assert "two datums wrote /same.txt" in job.reason
    assert "data:/a.txt" in job.reason and "data:/b.txt" in job.reason
    with pytest.raises(CommitNotFound):
        kit.store.inspect_commit("s@master")
    failed = kit.catalog.datums(job.id, states=("failed",))
    assert len(failed) == 2 and all("also wrote" in r.error for r in failed)
    assert (job.processed, job.failed) == (0, 2)


def test_a_new_datum_writing_a_skipped_datums_path_fails(kit):
    mod = kit.module(
        """
        def run(inputs, output):
            (output / "same.txt").write_text("x")
        """
    )
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"python": f"{mod}:run"},
        }
    )
    assert run_job(kit.catalog, "s").state == SUCCESS
    before = kit.store.inspect_commit("s@master").id
    kit.store.put_files("data@master", [("/b.txt", b"b")])
    job = run_job(kit.catalog, "s")
    assert job.state == FAILURE
    assert "two datums wrote /same.txt" in job.reason and "data:/b.txt" in job.reason
    assert kit.store.inspect_commit("s@master").id == before


def test_cmd_transform_with_stdin_env_and_layout(kit):
    _data(kit, {"/x/1.txt": b"one", "/x/2.txt": b"two", "/y/3.txt": b"three"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {
                "cmd": ["sh"],
                "stdin": [
                    'name=$(ls "$HEADRACE_INPUT/data")',
                    'cat "$HEADRACE_INPUT"/data/$name/* > "$HEADRACE_OUTPUT/$name.txt"',
                    'echo "$GREETING" >> "$HEADRACE_OUTPUT/$name.txt"',
                ],
                "env": {"GREETING": "hi"},
            },
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == SUCCESS, job.reason
    assert kit.files("s@master") == {"/x.txt": b"onetwohi\n", "/y.txt": b"threehi\n"}


def test_environment_names_each_input_its_datum_path_and_join_key(kit):
    """Pachyderm's TestPipelineEnvVarAlias and TestPipelineEnvVarJoinOn (src/server/
    pps_test.go): user code gets '<input name>' = the datum's path for that input,
    'PACH_DATUM_<input name>_JOIN_ON' = the join key, and PACH_JOB_ID, PACH_DATUM_ID,
    PACH_OUTPUT_COMMIT_ID, '<input name>_COMMIT' (driver.UserCodeEnv)."""
    kit.store.create_repo("left")
    kit.store.create_repo("right")
    left = kit.store.put_files("left@master", [("/k1.txt", b"L")])
    kit.store.put_files("right@master", [("/k1.csv", b"R")])
    kit.stage(
        {
            "name": "s",
            "input": {
                "join": [
                    {"pfs": {"repo": "left", "glob": "/(*).txt", "join_on": "$1", "name": "l"}},
                    {"pfs": {"repo": "right", "glob": "/(*).csv", "join_on": "$1"}},
                ]
            },
            "transform": {
                "cmd": ["sh"],
                "stdin": [
                    'cat "$l" "$right" > "$HEADRACE_OUTPUT/both"',
                    'echo "$PACH_DATUM_l_JOIN_ON $HEADRACE_DATUM_right_JOIN_ON" > '
                    '"$HEADRACE_OUTPUT/key"',
                    'echo "$PACH_JOB_ID $PACH_DATUM_ID $PACH_OUTPUT_COMMIT_ID $l_COMMIT" > '
                    '"$HEADRACE_OUTPUT/ids"',
                ],
            },
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == SUCCESS, job.reason
    files = kit.files("s@master")
    assert files["/both"] == b"LR" and files["/key"] == b"k1 k1\n"
    (row,) = kit.catalog.datums(job.id)
    expected = f"{job.id} {row.datum_id} {job.output_commit} {left.id}\n"
    assert files["/ids"] == expected.encode()


def test_union_inputs_sharing_a_name_each_give_their_own_datums(kit):
    """Pachyderm's union of inputs with one name: the code reads $in (or /pfs/in) whichever
    repo the datum came from, and <name>_COMMIT is that repo's commit. A path present in both
    repos is two datums; the job records the commit of each input."""
    kit.store.create_repo("ringling")
    kit.store.create_repo("barnum")
    ringling = kit.store.put_files("ringling@master", [("/a.txt", b"R-a"), ("/b.txt", b"R-b")])
    barnum = kit.store.put_files("barnum@master", [("/a.txt", b"B-a")])
    kit.stage(
        {
            "name": "s",
            "input": {
                "union": [
                    {"pfs": {"repo": "ringling", "glob": "/*", "name": "in"}},
                    {"pfs": {"repo": "barnum", "glob": "/*", "name": "in"}},
                ]
            },
            "transform": {
                "cmd": ["sh"],
                "stdin": ['cat "$in" > "$HEADRACE_OUTPUT/$in_COMMIT-$(basename "$in")"'],
            },
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == SUCCESS, job.reason
    assert (job.total, job.processed) == (3, 3)
    assert kit.files("s@master") == {
        f"/{ringling.id}-a.txt": b"R-a",
        f"/{ringling.id}-b.txt": b"R-b",
        f"/{barnum.id}-a.txt": b"B-a",
    }
    assert job.inputs == {"in:ringling@master": ringling.id, "in:barnum@master": barnum.id}
    assert sorted(c.id for c in kit.store.provenance("s@master")) == sorted(
        [ringling.id, barnum.id]
    )
    # a new commit to one repo reruns only its own datums
    kit.store.put_files("barnum@master", [("/c.txt", b"B-c")])
    again = run_job(kit.catalog, "s")
    assert again.state == SUCCESS, again.reason
    assert (again.total, again.processed, again.skipped) == (4, 1, 3)


def test_an_output_file_name_with_a_glob_character_fails_the_datum(kit):
    """Pachyderm refuses output paths with glob characters (pfs: 'path contains glob
    characters'); the datum fails naming the file instead of writing an unreachable one."""
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/"}},
            "transform": {"cmd": ["sh", "-c", 'touch "$HEADRACE_OUTPUT/what?.txt"']},
            "datum_tries": 1,
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == FAILURE
    (row,) = kit.catalog.datums(job.id, with_logs=True)
    assert "/what?.txt" in row.error and "glob character" in row.error


def test_an_output_linked_to_an_input_stores_the_input_bytes(kit):
    """Pachyderm's docs suggest symlinking an output to an input file to avoid a copy (the
    link's target is uploaded); a link leading out of the datum's sandbox is refused."""
    _data(kit, {"/a.txt": b"alpha", "/b.txt": b"beta"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {
                "cmd": [
                    "sh",
                    "-c",
                    'for f in "$HEADRACE_INPUT"/data/*; do ln -s "$f" "$HEADRACE_OUTPUT/"; done',
                ]
            },
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == SUCCESS
    assert kit.store.get_file("s@master:/a.txt") == b"alpha"
    assert kit.store.get_file("s@master:/b.txt") == b"beta"


def test_an_output_linked_outside_the_sandbox_fails_the_datum(kit, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the store")
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/"}},
            "transform": {"cmd": ["sh", "-c", f'ln -s {secret} "$HEADRACE_OUTPUT/leak.txt"']},
            "datum_tries": 1,
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == FAILURE
    (row,) = kit.catalog.datums(job.id, with_logs=True)
    assert "leak.txt is a symbolic link" in row.error and "outside" in row.error


def test_cmd_failure_names_the_exit_status(kit):
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/"}},
            "transform": {"cmd": ["sh", "-c", "echo oops; exit 7"]},
            "datum_tries": 1,
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == FAILURE
    (row,) = kit.catalog.datums(job.id, with_logs=True)
    assert "exited with status 7" in row.error and "oops" in row.log


def test_pipeline_transform_runs_a_headrace_pipeline_per_datum(kit):
    mod = kit.module(
        """
        import headrace.beam as beam
        def build(inputs, output):
            p = beam.Pipeline()
            (p
             | beam.io.ReadFromText(str(inputs["data"] / "*" / "*.txt"))
             | beam.FlatMap(str.split)
             | beam.combiners.Count.PerElement()
             | beam.MapTuple(lambda w, n: f"{w} {n}")
             | beam.io.WriteToText(str(output / "counts"), shard_name_template=""))
            return p
        """
    )
    _data(kit, {"/a/x.txt": b"a b a", "/b/y.txt": b"c"})
    kit.stage(
        {
            "name": "wc",
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"pipeline": f"{mod}:build"},
        }
    )
    # each datum writes /counts: two datums, one path
    job = run_job(kit.catalog, "wc")
    assert job.state == FAILURE and "two datums wrote /counts" in job.reason
    mod2 = kit.module(
        """
        import headrace.beam as beam
        def build(inputs, output):
            (sub,) = [d for d in inputs["data"].iterdir()]
            p = beam.Pipeline()
            (p
             | beam.io.ReadFromText(str(sub / "*.txt"))
             | beam.FlatMap(str.split)
             | beam.combiners.Count.PerElement()
             | beam.MapTuple(lambda w, n: f"{w} {n}")
             | beam.io.WriteToText(str(output / sub.name), shard_name_template=""))
            return p
        """
    )
    kit.stage(
        {
            "name": "wc",
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"pipeline": f"{mod2}:build"},
        },
        update=True,
    )
    job = run_job(kit.catalog, "wc")
    assert job.state == SUCCESS, job.reason
    files = kit.files("wc@master")
    assert sorted(files["/a"].decode().split("\n")[:-1]) == ["a 2", "b 1"]
    assert files["/b"] == b"c 1\n"


def test_empty_files_lays_out_names_only(kit):
    mod = kit.module(
        """
        def run(inputs, output):
            for f in inputs["data"].rglob("*.txt"):
                (output / f.name).write_text(str(f.stat().st_size))
        """
    )
    _data(kit, {"/a.txt": b"12345"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/*", "empty_files": True}},
            "transform": {"python": f"{mod}:run"},
        }
    )
    assert run_job(kit.catalog, "s").state == SUCCESS
    assert kit.files("s@master") == {"/a.txt": b"0"}


def test_an_open_input_commit_refuses_to_start(kit):
    _data(kit, {"/a.txt": b"a"})
    _upper_stage(kit)
    kit.store.start_commit("data@master")
    with pytest.raises(JobError, match="still open"):
        run_job(kit.catalog, "up")


def test_a_busy_output_branch_fails_the_job_clearly(kit):
    _data(kit, {"/a.txt": b"a"})
    _upper_stage(kit)
    kit.store.create_repo("up")
    kit.store.start_commit("up@master")
    job = run_job(kit.catalog, "up")
    assert job.state == FAILURE and "busy" in job.reason


def test_missing_module_gives_a_clear_datum_error(kit):
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/"}},
            "transform": {"python": "no_such_module_here:run"},
            "datum_tries": 1,
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == FAILURE
    assert "transform.python: cannot import module 'no_such_module_here'" in job.reason


def test_stop_requested_kills_the_job(kit):
    mod = kit.module(
        """
        import time
        def run(inputs, output):
            time.sleep(30)
        """
    )
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/"}},
            "transform": {"python": f"{mod}:run"},
        }
    )
    seen = []

    def progress(job):
        seen.append(job.state)
        if len(seen) == 1:
            kit.catalog.set_job(job.id, stop_requested=True)

    job = run_job(kit.catalog, "s", progress=progress)
    assert job.state == KILLED and "stopped" in job.reason
    with pytest.raises(CommitNotFound):
        kit.store.inspect_commit("s@master")


def test_without_batching_every_datum_gets_a_fresh_process(kit):
    mod = kit.module(
        """
        import os
        def run(inputs, output):
            name = next(inputs["data"].rglob("*.txt")).name
            (output / name).write_text(str(os.getpid()))
        """
    )
    _data(kit, {f"/{i}.txt": b"x" for i in range(4)})
    for batching, expect_distinct in ((False, 4), (True, 1)):
        kit.stage(
            {
                "name": f"s{int(batching)}",
                "input": {"pfs": {"repo": "data", "glob": "/*"}},
                "transform": {"python": f"{mod}:run"},
                "datum_batching": batching,
            }
        )
        job = run_job(kit.catalog, f"s{int(batching)}")
        assert job.state == SUCCESS
        pids = set(kit.files(f"s{int(batching)}@master").values())
        assert len(pids) == expect_distinct


def test_environment_runs_the_transform_with_another_interpreter(kit, tmp_path):
    import subprocess
    import sys

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    mod = kit.module(
        """
        import sys
        def run(inputs, output):
            (output / "python.txt").write_text(sys.prefix)
            print("running in", sys.prefix)
        """
    )
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/"}},
            "transform": {"python": f"{mod}:run", "environment": str(venv)},
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == SUCCESS, job.reason
    assert kit.files("s@master") == {"/python.txt": str(venv).encode()}
    (row,) = kit.catalog.datums(job.id, with_logs=True)
    assert f"running in {venv}" in row.log


def test_environment_that_does_not_exist_fails_the_datum_clearly(kit, tmp_path):
    mod = kit.module("def run(inputs, output):\n    pass\n")
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/"}},
            "transform": {"python": f"{mod}:run", "environment": str(tmp_path / "nope")},
            "datum_tries": 1,
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == FAILURE
    assert "transform.environment: no interpreter or virtualenv" in job.reason


def test_output_branch_and_a_group_input(kit):
    mod = kit.module(
        """
        def run(inputs, output):
            files = sorted(p for p in inputs["data"].rglob("*.txt"))
            key = files[0].name.split("-")[0]
            (output / f"{key}.txt").write_text(",".join(p.name for p in files))
        """
    )
    _data(kit, {"/a-1.txt": b"", "/b-1.txt": b"", "/a-2.txt": b""})
    kit.stage(
        {
            "name": "g",
            "input": {"group": [{"pfs": {"repo": "data", "glob": "/(*)-*.txt", "group_by": "$1"}}]},
            "transform": {"python": f"{mod}:run"},
            "output_branch": "dev",
        }
    )
    job = run_job(kit.catalog, "g")
    assert job.state == SUCCESS, job.reason
    assert kit.files("g@dev") == {"/a.txt": b"a-1.txt,a-2.txt", "/b.txt": b"b-1.txt"}
    assert [b.name for b in kit.store.list_branches("g")] == ["dev"]


def test_datums_of_a_duplicate_failure_are_not_reused_blindly(kit, tmp_path):
    fixed = tmp_path / "fixed"
    mod = kit.module(
        f"""
        from pathlib import Path
        def run(inputs, output):
            f = next(inputs["data"].rglob("*.txt"))
            name = f.name if Path({str(fixed)!r}).exists() else "same.txt"
            (output / name).write_text(f.read_text())
        """
    )
    _data(kit, {"/a.txt": b"a", "/b.txt": b"b"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"python": f"{mod}:run"},
        }
    )
    assert run_job(kit.catalog, "s").state == FAILURE
    fixed.write_text("")
    job = run_job(kit.catalog, "s")
    assert job.state == SUCCESS, job.reason
    assert kit.files("s@master") == {"/a.txt": b"a", "/b.txt": b"b"}
