"""Pachyderm's own pipeline specs accepted by load_spec: mapped, warned about or refused.

The specs follow Pachyderm's pipeline spec reference (docs-content: latest/build-dags/
pipeline-spec) and its beginner tutorial's edges.json / montage.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headrace.stages.catalog import SUCCESS
from headrace.stages.jobs import run_job
from headrace.stages.sandbox import ENGINE_VARIABLE, check_transform, container_command
from headrace.stages.spec import CrossInput, PfsInput, SpecError, load_spec

EDGES = {
    "pipeline": {"name": "edges"},
    "description": "A pipeline that performs image edge detection by using the OpenCV library.",
    "transform": {"cmd": ["python3", "/edges.py"], "image": "pachyderm/opencv:1.0"},
    "input": {"pfs": {"repo": "images", "glob": "/*"}},
}


def test_the_tutorials_edges_spec_maps_onto_a_stage() -> None:
    notes: list[str] = []
    spec = load_spec(EDGES, warn=notes.append)
    assert spec.name == "edges" and spec.description.startswith("A pipeline")
    assert spec.transform.cmd == ("python3", "/edges.py")
    assert spec.transform.image == "pachyderm/opencv:1.0" and spec.transform.pfs
    assert spec.input == PfsInput("images", "/*")
    assert notes == []


def test_every_mapped_field(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("true\n")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(
        json.dumps(
            {
                "pipeline": {"name": "p"},
                "transform": {"cmd": ["sh", "run.sh", "-x"], "stdin": ["a"], "env": {"K": "v"}},
                "parallelism_spec": {"constant": 4},
                "datum_tries": 5,
                "datum_timeout": "30s",
                "job_timeout": "1h",
                "output_branch": "out",
                "egress": {"URL": "file:///tmp/egress"},
                "reprocess_spec": "every_job",
                "salt": "s1",
                "input": {
                    "cross": [
                        {"pfs": {"repo": "a", "glob": "/*", "lazy": True, "name": "x"}},
                        {"pfs": {"repo": "b", "glob": "/", "branch": "dev", "empty_files": True}},
                    ]
                },
            }
        )
    )
    spec = load_spec(spec_file)
    assert spec.transform.cmd == ("sh", str(tmp_path / "run.sh"), "-x")  # beside the spec
    assert spec.transform.stdin == ("a",) and spec.transform.env_dict == {"K": "v"}
    assert (spec.parallelism, spec.datum_tries) == (4, 5)
    assert (spec.datum_timeout, spec.job_timeout) == (30, 3600)
    assert (spec.output_branch, spec.egress, spec.reprocess) == (
        "out",
        "file:///tmp/egress",
        "every_job",
    )
    assert spec.salt == "s1"
    assert isinstance(spec.input, CrossInput)
    assert spec.input.inputs == (
        PfsInput("a", "/*", name="x", lazy=True),
        PfsInput("b", "/", branch="dev", empty_files=True),
    )


def test_fields_without_meaning_here_are_named_in_warnings() -> None:
    notes: list[str] = []
    load_spec(
        {
            **EDGES,
            "resource_requests": {"memory": "1G", "cpu": 1},
            "autoscaling": True,
            "transform": {**EDGES["transform"], "user": "root"},  # type: ignore[dict-item]
            "input": {"pfs": {"repo": "images", "glob": "/*", "project": "default"}},
        },
        warn=notes.append,
    )
    assert sorted(n.split(":")[0] for n in notes) == [
        "autoscaling",
        "input.pfs.project",
        "resource_requests",
        "transform.user",
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"spout": {}}, "spout"),
        ({"service": {"internal_port": 80}}, "service"),
        ({"s3_out": True}, "s3_out"),
        ({"transform": {"cmd": ["sh"], "err_cmd": ["true"]}}, "transform.err_cmd"),
        ({"transform": {"cmd": ["sh"], "accept_return_code": [1]}}, "transform.accept_return_code"),
        ({"input": {"pfs": {"repo": "a", "glob": "/", "commit": "abc"}}}, "input.pfs.commit"),
        ({"input": {"pfs": {"repo": "a", "glob": "/", "trigger": {}}}}, "input.pfs.trigger"),
        ({"input": {"git": {"url": "x"}}}, "input.git"),
        ({"no_such_field": 1}, "no_such_field"),
    ],
)
def test_fields_that_would_change_results_are_refused(change: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec({**EDGES, **change})
    assert info.value.path == field


def test_a_pachyderm_spec_with_a_bad_glob_is_refused_naming_the_field() -> None:
    bad = {**EDGES, "input": {"pfs": {"repo": "images", "glob": "/*.{png"}}}
    with pytest.raises(SpecError, match=r"input\.pfs\.glob: invalid glob"):
        load_spec(bad)


# --- running: /pfs paths and container images --------------------------------------------------


def test_a_pachyderm_cmd_reads_pfs_input_and_writes_pfs_out(kit, tmp_path) -> None:
    """Pachyderm's layout (docs: 'Datum' / beginner tutorial): the datum's files under
    /pfs/<input>, outputs written to /pfs/out, the input's variable naming the datum's path
    there; a relative script path in cmd is read from the spec's folder."""
    kit.store.create_repo("images")
    kit.store.put_files("images@master", [("/a.txt", b"A"), ("/b.txt", b"B")])
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "copy.sh").write_text(
        'for f in /pfs/images/*; do cat "$f" > /pfs/out/$(basename "$f").copy; done\n'
        'echo "$images" > /pfs/out/$(basename "$images").var\n'
    )
    (folder / "spec.json").write_text(
        json.dumps(
            {
                "pipeline": {"name": "copy"},
                "transform": {"cmd": ["sh", "copy.sh"]},
                "input": {"pfs": {"repo": "images", "glob": "/*"}},
            }
        )
    )
    spec = load_spec(folder / "spec.json")
    kit.catalog.put_stage(spec, str(folder / "spec.json"))
    job = run_job(kit.catalog, "copy")
    assert job.state == SUCCESS, job.reason
    assert kit.files("copy@master") == {
        "/a.txt.copy": b"A",
        "/b.txt.copy": b"B",
        "/a.txt.var": b"/pfs/images/a.txt\n",
        "/b.txt.var": b"/pfs/images/b.txt\n",
    }


def test_an_image_without_a_container_engine_is_refused(monkeypatch) -> None:
    monkeypatch.delenv(ENGINE_VARIABLE, raising=False)
    with pytest.raises(ValueError, match="needs a container engine"):
        check_transform(load_spec(EDGES).transform)
    monkeypatch.setenv(ENGINE_VARIABLE, "no-such-engine-here")
    with pytest.raises(ValueError, match="names no program"):
        check_transform(load_spec(EDGES).transform)


def test_the_container_command_line_mounts_pfs(tmp_path) -> None:
    """No container engine runs on the test machines: the command line is what is tested."""
    line = container_command(
        "podman",
        "pachyderm/opencv:1.0",
        ["python3", "/edges.py"],
        {"images": tmp_path / "in" / "images"},
        tmp_path / "out",
        {"images": "/pfs/images/a.png", "PACH_JOB_ID": "j1"},
        True,
    )
    assert line[:4] == ["podman", "run", "--rm", "-i"]
    assert line[-3:] == ["pachyderm/opencv:1.0", "python3", "/edges.py"]
    pairs = list(zip(line, line[1:]))
    assert ("-v", f"{tmp_path}/in/images:/pfs/images:ro") in pairs
    assert ("-v", f"{tmp_path}/out:/pfs/out") in pairs
    assert ("-e", "images=/pfs/images/a.png") in pairs and ("-e", "PACH_JOB_ID=j1") in pairs


def test_pfs_paths_without_namespaces_are_refused_at_creation(monkeypatch) -> None:
    """Where unprivileged mount namespaces are not allowed, a Pachyderm cmd cannot see /pfs:
    the stage is refused when it is created, never run into empty outputs."""
    monkeypatch.setattr(
        "headrace.stages.sandbox.pfs_namespaces_work", lambda: "unshare is not installed"
    )
    spec = load_spec({**EDGES, "transform": {"cmd": ["sh", "-c", "ls /pfs/images"]}})
    with pytest.raises(ValueError, match="expects its datum under /pfs.*unshare is not installed"):
        check_transform(spec.transform)
