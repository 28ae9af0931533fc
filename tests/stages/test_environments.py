"""``transform.requirements`` on local workers: a virtual environment built once per machine and
requirement list, the transform run in it (stages/environments.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from tests.stages.wheels import make_wheel

from headrace.stages.catalog import FAILURE, SUCCESS
from headrace.stages.environments import ENV_CACHE_ENV
from headrace.stages.jobs import run_job
from headrace.stages.spec import SpecError, load_spec

pytestmark = pytest.mark.slow  # building a venv takes seconds

USES_DEP = """
import sys
import hr_demo_dep
def run(inputs, output):
    (output / "value.txt").write_text(hr_demo_dep.VALUE + "|" + sys.prefix)
"""


def _stage(kit: Any, name: str, requirements: list[str]) -> None:
    kit.store.create_repo(f"in{name}")
    kit.store.put_files(f"in{name}@master", [("/a.txt", b"a")])
    kit.stage(
        {
            "name": name,
            "input": {"pfs": {"repo": f"in{name}", "glob": "/"}},
            "transform": {"python": f"{kit.module(USES_DEP)}:run", "requirements": requirements},
        }
    )


def test_requirements_are_installed_into_the_stages_own_environment(
    kit: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_CACHE_ENV, str(tmp_path / "envs"))
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "hr_demo_dep", "1.0", "VALUE = 'from the wheel'\n")
    assert importlib.util.find_spec("hr_demo_dep") is None  # not in headrace's environment
    lines = ["--no-index", f"--find-links {wheels}", "hr_demo_dep==1.0"]
    _stage(kit, "one", lines)
    job = run_job(kit.catalog, "one")
    assert job.state == SUCCESS, job.reason
    value, prefix = kit.files("one@master")["/value.txt"].decode().split("|", 1)
    assert value == "from the wheel"
    assert prefix.startswith(str(tmp_path / "envs"))  # ran on the built environment's python
    built = list((tmp_path / "envs").glob("*/headrace-ready"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns

    _stage(kit, "two", lines)  # the same list: the environment is reused, not rebuilt
    job = run_job(kit.catalog, "two")
    assert job.state == SUCCESS, job.reason
    assert built[0].stat().st_mtime_ns == stamp
    assert importlib.util.find_spec("hr_demo_dep") is None


def test_requirements_pip_cannot_install_fail_the_job_naming_the_field(
    kit: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_CACHE_ENV, str(tmp_path / "envs"))
    _stage(kit, "bad", ["--no-index", "hr_no_such_package==9.9"])
    job = run_job(kit.catalog, "bad")
    assert job.state == FAILURE
    assert "transform.requirements: pip install failed" in job.reason
    assert "hr_no_such_package" in job.reason
    assert not list((tmp_path / "envs").glob("*/headrace-ready"))


@pytest.mark.parametrize(
    ("transform", "problem"),
    [
        ({"pipeline": "m:f", "requirements": ["x"]}, "only applies to a 'python' transform"),
        ({"python": "m:f", "environment": "/venv", "requirements": ["x"]}, "either environment"),
        ({"python": "m:f", "requirements": []}, "non-empty list"),
    ],
)
def test_requirements_spec_errors_name_the_field(transform: dict, problem: str) -> None:
    with pytest.raises(SpecError, match=problem) as info:
        load_spec(
            {"name": "s", "input": {"pfs": {"repo": "r", "glob": "/"}}, "transform": transform}
        )
    assert str(info.value).startswith("transform.requirements")
