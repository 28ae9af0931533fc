"""Stage specs: parsing every input kind, round trips, versions, and each validation error."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from headrace.stages.spec import (
    CronInput,
    CrossInput,
    GroupInput,
    JoinInput,
    PfsInput,
    SpecError,
    StageSpec,
    Transform,
    UnionInput,
    iter_inputs,
    load_spec,
    split_capture_groups,
)


def base(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "clean",
        "input": {"pfs": {"repo": "orders", "glob": "/*"}},
        "transform": {"python": "shop.clean:run"},
    }
    spec.update(overrides)
    return spec


def error(data: Any) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(data)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# Valid specs

FULL_YAML = """
name: train
description: trains the model
input:
  cross:
    - join:
        - pfs: {repo: orders, glob: "/(*)-(*).csv", join_on: "$1", outer_join: true}
        - pfs: {repo: customers, branch: dev, glob: "/(*).csv", join_on: "${1}"}
    - union:
        - pfs: {repo: a, glob: /, name: left}
        - pfs: {repo: b, glob: "/**", empty_files: true}
    - group:
        - pfs: {repo: logs, glob: "/(*)/*.log", group_by: "day-$1"}
    - cron: {name: tick, spec: "*/15 * * * *", overwrite: true}
transform:
  cmd: [python, train.py, --fast]
  stdin: [line one, line two]
  env: {MODE: fast, B: "1"}
  environment: /opt/venvs/train
parallelism: 4
datum_tries: 5
datum_timeout: 30s
job_timeout: 1h30m
output_branch: models
egress: s3://bucket/out
salt: v2
reprocess: every_job
datum_batching: false
"""


def test_full_yaml_spec_parses_into_dataclasses() -> None:
    spec = load_spec(FULL_YAML)
    assert spec.name == "train"
    assert spec.description == "trains the model"
    cross = spec.input
    assert isinstance(cross, CrossInput)
    join, union, group, cron = cross.inputs
    assert join == JoinInput(
        (
            PfsInput("orders", "/(*)-(*).csv", join_on="$1", outer_join=True),
            PfsInput("customers", "/(*).csv", branch="dev", join_on="${1}"),
        )
    )
    assert union == UnionInput(
        (PfsInput("a", "/", name="left"), PfsInput("b", "/**", empty_files=True))
    )
    assert group == GroupInput((PfsInput("logs", "/(*)/*.log", group_by="day-$1"),))
    assert cron == CronInput("tick", "*/15 * * * *", overwrite=True)
    assert spec.transform == Transform(
        cmd=("python", "train.py", "--fast"),
        stdin=("line one", "line two"),
        env=(("B", "1"), ("MODE", "fast")),
        environment="/opt/venvs/train",
    )
    assert spec.transform.kind == "cmd"
    assert spec.transform.entry_point is None
    assert spec.transform.env_dict == {"B": "1", "MODE": "fast"}
    assert (spec.parallelism, spec.datum_tries) == (4, 5)
    assert (spec.datum_timeout, spec.job_timeout) == (30.0, 5400.0)
    assert spec.output_branch == "models"
    assert spec.egress == "s3://bucket/out"
    assert spec.salt == "v2"
    assert spec.reprocess == "every_job"
    assert spec.datum_batching is False
    assert spec.input_names == ("orders", "customers", "left", "b", "logs", "tick")


def test_defaults_are_filled_in() -> None:
    spec = load_spec(base())
    assert spec.input == PfsInput("orders", "/*", branch="master", name="orders")
    assert spec.transform.kind == "python"
    assert spec.transform.entry_point == ("shop.clean", "run")
    assert spec.description == ""
    assert spec.parallelism == 1
    assert spec.datum_tries == 3
    assert spec.datum_timeout is None and spec.job_timeout is None
    assert spec.output_branch == "master"
    assert spec.egress is None
    assert spec.salt == ""
    assert spec.reprocess == "until_success"
    assert spec.datum_batching is None  # workers serve many datums unless told not to


def test_pipeline_transform_and_batching() -> None:
    spec = load_spec(base(transform={"pipeline": "shop.flows:build"}, datum_batching=True))
    assert spec.transform == Transform(pipeline="shop.flows:build")
    assert spec.transform.kind == "pipeline"
    assert spec.transform.entry_point == ("shop.flows", "build")
    assert spec.datum_batching is True


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (2.5, 2.5),
        ("30", 30.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1d", 86400.0),
        ("1.5s", 1.5),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert load_spec(base(datum_timeout=value)).datum_timeout == seconds


@pytest.mark.parametrize(
    "schedule",
    [
        "@every 10s",
        "@every 1h30m",
        "@daily",
        "@HOURLY",
        "0 0 * * *",
        "*/5 1-3 1,15 jan-mar mon-fri",
        "0 12 ? * SUN",
        "30 2 1 */2 7",
    ],
)
def test_cron_schedules(schedule: str) -> None:
    spec = load_spec(base(input={"cron": {"name": "tick", "spec": schedule}}))
    assert isinstance(spec.input, CronInput)
    assert spec.input.overwrite is False


def test_cron_every_and_whitespace_normalised() -> None:
    spec = load_spec(base(input={"cron": {"name": "tick", "spec": "@every   10s"}}))
    assert isinstance(spec.input, CronInput)
    assert spec.input.spec == "@every 10s"
    assert spec.input.every == 10.0
    assert CronInput("t", "@daily").every is None


def test_nesting_cross_inside_union_inside_cross() -> None:
    spec = load_spec(
        base(
            input={
                "cross": [
                    {
                        "union": [
                            {
                                "cross": [
                                    {"pfs": {"repo": "a", "glob": "/*"}},
                                    {"pfs": {"repo": "b", "glob": "/*"}},
                                ]
                            },
                            {"pfs": {"repo": "c", "glob": "/"}},
                        ]
                    },
                    {"pfs": {"repo": "d", "glob": "/*/*.csv"}},
                ]
            }
        )
    )
    assert spec.input == CrossInput(
        (
            UnionInput(
                (CrossInput((PfsInput("a", "/*"), PfsInput("b", "/*"))), PfsInput("c", "/"))
            ),
            PfsInput("d", "/*/*.csv"),
        )
    )
    paths = [path for path, _ in iter_inputs(spec.input)]
    assert paths == [
        "input.cross",
        "input.cross[0].union",
        "input.cross[0].union[0].cross",
        "input.cross[0].union[0].cross[0].pfs",
        "input.cross[0].union[0].cross[1].pfs",
        "input.cross[0].union[1].pfs",
        "input.cross[1].pfs",
    ]
    assert spec.input_names == ("a", "b", "c", "d")


def test_same_repo_twice_with_distinct_names() -> None:
    spec = load_spec(
        base(
            input={
                "cross": [
                    {"pfs": {"repo": "a", "glob": "/*"}},
                    {"pfs": {"repo": "a", "glob": "/*", "name": "a2"}},
                ]
            }
        )
    )
    assert spec.input_names == ("a", "a2")


def test_json_text_and_files(tmp_path: Path) -> None:
    data = base(parallelism=2)
    from_json = load_spec(json.dumps(data))
    json_file = tmp_path / "stage.json"
    json_file.write_text(json.dumps(data))
    yaml_file = tmp_path / "stage.yaml"
    yaml_file.write_text(
        "name: clean\ninput:\n  pfs: {repo: orders, glob: '/*'}\n"
        "transform:\n  python: shop.clean:run\nparallelism: 2\n"
    )
    assert from_json == load_spec(json_file) == load_spec(str(json_file)) == load_spec(yaml_file)
    assert from_json == load_spec(str(yaml_file)) == load_spec(data)


def test_null_fields_count_as_absent() -> None:
    spec = load_spec(base(description=None, egress=None, salt=None))
    assert spec == load_spec(base())


# ---------------------------------------------------------------------------------------------
# Round trip


@pytest.mark.parametrize("include_defaults", [False, True])
def test_round_trip(include_defaults: bool) -> None:
    spec = load_spec(FULL_YAML)
    data = spec.to_dict(include_defaults=include_defaults)
    assert json.loads(json.dumps(data)) == data  # plain data
    again = load_spec(data)
    assert again == spec
    assert again.version == spec.version
    assert again.to_dict(include_defaults=include_defaults) == data


def test_to_dict_omits_defaults_and_writes_seconds() -> None:
    spec = load_spec(
        base(
            datum_timeout="5m",
            input={"pfs": {"repo": "orders", "glob": "/*", "branch": "master", "name": "orders"}},
        )
    )
    assert spec.to_dict() == {
        "name": "clean",
        "input": {"pfs": {"repo": "orders", "glob": "/*"}},
        "transform": {"python": "shop.clean:run"},
        "datum_timeout": 300,
    }
    full = spec.to_dict(include_defaults=True)
    assert full["input"] == {
        "pfs": {
            "repo": "orders",
            "branch": "master",
            "glob": "/*",
            "name": "orders",
            "empty_files": False,
            "lazy": False,
        }
    }
    assert full["datum_tries"] == 3 and full["reprocess"] == "until_success"
    assert load_spec(full) == spec


def test_spec_pickles() -> None:
    spec = load_spec(FULL_YAML)
    _ = spec.version
    for module in (pickle, cloudpickle):
        again = module.loads(module.dumps(spec))
        assert again == spec
        assert again.version == spec.version
    assert hash(spec) == hash(load_spec(FULL_YAML))


def test_spec_error_pickles() -> None:
    err = SpecError("input.pfs.glob", "must start with '/'", "stage.yaml")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) == "stage.yaml: input.pfs.glob: must start with '/'"
    assert (again.path, again.problem, again.source) == (err.path, err.problem, err.source)


# ---------------------------------------------------------------------------------------------
# Version


def test_version_is_stable_and_ignores_spelling_of_defaults() -> None:
    a = load_spec(base())
    b = load_spec(
        base(
            input={"pfs": {"repo": "orders", "glob": "/*", "branch": "master", "name": "orders"}},
            salt="",
        )
    )
    assert a.version == b.version
    assert len(a.version) == 32 and int(a.version, 16) >= 0
    # Pinned: the hash must not drift between releases, or every datum would rerun.
    assert a.version == load_spec(base()).version
    assert a.version == "6adf0582457e33c18b562a4ce2341442"


@pytest.mark.parametrize(
    "change",
    [
        {"transform": {"python": "shop.clean:run2"}},
        {"transform": {"pipeline": "shop.clean:run"}},
        {"transform": {"python": "shop.clean:run", "environment": "/opt/py"}},
        {"salt": "x"},
        {"input": {"pfs": {"repo": "orders", "glob": "/*/*"}}},
        {"input": {"pfs": {"repo": "orders", "glob": "/*", "name": "o"}}},
        {"input": {"pfs": {"repo": "orders", "glob": "/*", "empty_files": True}}},
        {"input": {"pfs": {"repo": "orders2", "glob": "/*"}}},
    ],
    ids=str,
)
def test_version_changes_with_what_affects_outputs(change: dict[str, Any]) -> None:
    assert load_spec(base(**change)).version != load_spec(base()).version


def test_version_changes_with_cmd_env_and_stdin() -> None:
    cmd = {"cmd": ["run"], "env": {"A": "1"}, "stdin": ["x"]}
    v = load_spec(base(transform=cmd)).version
    assert load_spec(base(transform={**cmd, "env": {"A": "2"}})).version != v
    assert load_spec(base(transform={**cmd, "stdin": ["y"]})).version != v
    assert load_spec(base(transform={**cmd, "cmd": ["run", "-v"]})).version != v
    # env order does not matter
    two = {"cmd": ["run"], "env": {"A": "1", "B": "2"}}
    swapped = {"cmd": ["run"], "env": {"B": "2", "A": "1"}}
    assert load_spec(base(transform=two)).version == load_spec(base(transform=swapped)).version


@pytest.mark.parametrize(
    "change",
    [
        {"description": "now documented"},
        {"parallelism": 8},
        {"datum_tries": 1},
        {"datum_timeout": 10},
        {"job_timeout": "1h"},
        {"output_branch": "dev"},
        {"egress": "file:///srv/out"},
        {"reprocess": "every_job"},
        {"datum_batching": True},
    ],
    ids=str,
)
def test_version_ignores_what_does_not_affect_outputs(change: dict[str, Any]) -> None:
    assert load_spec(base(**change)).version == load_spec(base()).version


def test_stage_name_does_not_change_version() -> None:
    assert load_spec(base(name="other")).version == load_spec(base()).version


# ---------------------------------------------------------------------------------------------
# Capture groups


def test_split_capture_groups() -> None:
    """Every extended-glob construct is a capture group, braces are not (ohmyglob's
    compiler/compiler.go); a glob is made absolute and loses a trailing '/'."""
    assert split_capture_groups("/*") == ("/*", 0)
    assert split_capture_groups("/(*)/(*).csv") == ("/(*)/(*).csv", 2)
    assert split_capture_groups("/((*)-*)") == ("/((*)-*)", 2)
    assert split_capture_groups(r"/\(x\)/(*)") == (r"/\(x\)/(*)", 1)
    assert split_capture_groups("*.{a,b}/") == ("/*.{a,b}", 0)
    assert split_capture_groups("/@(a)?(b)*(c)+(d)!(e)") == ("/@(a)?(b)*(c)+(d)!(e)", 5)
    for bad in ("/(*", "/()", "/[", "/{a"):
        with pytest.raises(ValueError):
            split_capture_groups(bad)


# ---------------------------------------------------------------------------------------------
# Validation errors: each names the field path


def test_error_top_level_not_a_mapping() -> None:
    assert error("- a\n- b\n").startswith("spec: a stage spec must be a mapping")


def test_error_empty_spec() -> None:
    assert "the spec is empty" in error("# nothing\n")


def test_error_invalid_yaml_and_json() -> None:
    assert "not valid YAML" in error("name: [unclosed\n")
    assert "not valid JSON" in error('{"name": }')


def test_error_duplicate_key_yaml_and_json() -> None:
    msg = error("name: a\nname: b\n")
    assert "found the key 'name' twice" in msg and "line 2" in msg
    assert "the key 'name' appears twice" in error('{"name": "a", "name": "b"}')


def test_error_file_name_prefixes_message(tmp_path: Path) -> None:
    path = tmp_path / "stage.yaml"
    path.write_text(
        "name: clean\ninput: {pfs: {repo: orders, glob: '/['}}\ntransform: {python: 'a:b'}\n"
    )
    assert error(path) == (
        f"{path}: input.pfs.glob: invalid glob '/[': a '[' set is never closed; "
        "write '\\[' for a literal '['"
    )


def test_error_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_spec(tmp_path / "nope.yaml")


@pytest.mark.parametrize("field", ["name", "input", "transform"])
def test_error_required_top_level(field: str) -> None:
    data = base()
    del data[field]
    assert error(data) == f"{field}: is required"


def test_error_unknown_top_level_field_suggests() -> None:
    assert (
        error(base(paralelism=2))
        == "paralelism: unknown field 'paralelism'; did you mean 'parallelism'?"
    )


def test_error_unknown_field_without_close_match_lists_known() -> None:
    msg = error(base(input={"pfs": {"repo": "a", "glob": "/", "zzzz": 1}}))
    assert msg.startswith("input.pfs.zzzz: unknown field 'zzzz'; known fields here: repo, branch")


def test_error_unknown_pfs_field_suggests() -> None:
    msg = error(
        base(
            input={
                "cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "b", "glop": "/"}}]
            }
        )
    )
    assert msg == "input.cross[1].pfs.glop: unknown field 'glop'; did you mean 'glob'?"


def test_error_unknown_input_kind_suggests() -> None:
    assert error(base(input={"crosss": []})).startswith(
        "input.crosss: unknown field 'crosss'; did you mean 'cross'?"
    )


def test_error_unknown_transform_field_suggests() -> None:
    msg = error(base(transform={"python": "a:b", "enviroment": "/x"}))
    assert msg == "transform.enviroment: unknown field 'enviroment'; did you mean 'environment'?"


def test_error_unknown_cron_field_suggests() -> None:
    msg = error(base(input={"cron": {"name": "t", "spec": "@daily", "overwrit": True}}))
    assert msg.startswith(
        "input.cron.overwrit: unknown field 'overwrit'; did you mean 'overwrite'?"
    )


@pytest.mark.parametrize("name", ["bad name", "-x", "", "a" * 101, "x.lock"])
def test_error_stage_name(name: str) -> None:
    assert error(base(name=name)).startswith("name: ")


def test_error_stage_name_not_string() -> None:
    assert error(base(name=2024)) == "name: must be a string (quote it), got int 2024"


def test_error_stage_reads_its_own_output() -> None:
    msg = error(base(input={"pfs": {"repo": "clean", "glob": "/"}}))
    assert msg.startswith("input.pfs.repo: the stage 'clean' writes to the repo 'clean'")


def test_error_description_not_string() -> None:
    assert error(base(description=["x"])).startswith("description: must be a string")


def test_error_input_empty_and_two_kinds() -> None:
    assert error(base(input={})).startswith("input: give one of pfs, cross")
    msg = error(
        base(input={"pfs": {"repo": "a", "glob": "/"}, "cron": {"name": "t", "spec": "@daily"}})
    )
    assert msg.startswith("input: give exactly one of") and "'pfs', 'cron'" in msg


def test_error_input_not_mapping() -> None:
    assert error(base(input=["pfs"])).startswith("input: an input must be a mapping")


def test_error_pfs_missing_repo_and_glob() -> None:
    assert error(base(input={"pfs": {"glob": "/"}})) == "input.pfs.repo: is required"
    assert error(base(input={"pfs": {"repo": "a"}})) == "input.pfs.glob: is required"


def test_error_pfs_bad_repo_branch_name() -> None:
    assert error(base(input={"pfs": {"repo": "a b", "glob": "/"}})).startswith(
        "input.pfs.repo: invalid repo name 'a b'"
    )
    assert error(base(input={"pfs": {"repo": "a", "branch": "x/y", "glob": "/"}})).startswith(
        "input.pfs.branch: invalid branch name 'x/y'"
    )
    assert error(base(input={"pfs": {"repo": "a", "name": "../x", "glob": "/"}})).startswith(
        "input.pfs.name: invalid input name '../x'"
    )


def test_glob_without_leading_slash_is_accepted() -> None:
    """Pachyderm cleans a glob to an absolute path (pfsfile.CleanPath): '*.csv' is '/*.csv'."""
    spec = load_spec(
        base(
            input={
                "cross": [
                    {"pfs": {"repo": "a", "glob": "/"}},
                    {"pfs": {"repo": "b", "glob": "*.csv"}},
                ]
            }
        )
    )
    assert spec.input.inputs[1].glob == "*.csv"  # type: ignore[union-attr]


def test_lazy_is_accepted_and_kept() -> None:
    """Pachyderm's pfs input field 'lazy' (pipeline spec reference): inputs streamed instead
    of downloaded; the results do not change, so headrace accepts and keeps it."""
    spec = load_spec(base(input={"pfs": {"repo": "a", "glob": "/*", "lazy": True}}))
    assert spec.input.lazy  # type: ignore[union-attr]
    assert spec.to_dict()["input"]["pfs"]["lazy"] is True
    assert load_spec(spec.to_dict()) == spec
    assert "lazy" in error(base(input={"pfs": {"repo": "a", "glob": "/*", "lazy": "yes"}}))


def test_error_glob_nested_names_its_field() -> None:
    msg = error(
        base(
            input={
                "cross": [
                    {"pfs": {"repo": "a", "glob": "/"}},
                    {"pfs": {"repo": "b", "glob": "/*.{csv"}},
                ]
            }
        )
    )
    assert msg.startswith("input.cross[1].pfs.glob: invalid glob '/*.{csv': ")


@pytest.mark.parametrize(
    ("glob", "problem"),
    [
        ("/a//b", "an empty segment"),
        ("/a/../b", "'..' is not allowed"),
        ("/(*", "never closed"),
        ("/{a,b", "never closed"),
        ("/[]", "empty set"),
        ("/^(a)", "not a glob construct"),
        ("/()", "must not be empty"),
    ],
)
def test_error_glob_shapes(glob: str, problem: str) -> None:
    msg = error(base(input={"pfs": {"repo": "a", "glob": glob}}))
    assert msg.startswith("input.pfs.glob: ") and problem in msg


def test_error_empty_files_not_bool() -> None:
    msg = error(base(input={"pfs": {"repo": "a", "glob": "/", "empty_files": "yes"}}))
    assert msg == "input.pfs.empty_files: must be true or false, got str 'yes'"


def test_error_join_on_outside_join() -> None:
    msg = error(base(input={"pfs": {"repo": "a", "glob": "/(*)", "join_on": "$1"}}))
    assert msg == "input.pfs.join_on: only applies to a pfs input inside a 'join'"


def test_error_outer_join_outside_join() -> None:
    msg = error(
        base(
            input={
                "group": [
                    {"pfs": {"repo": "a", "glob": "/(*)", "group_by": "$1", "outer_join": True}}
                ]
            }
        )
    )
    assert msg == "input.group[0].pfs.outer_join: only applies to a pfs input inside a 'join'"


def test_error_group_by_outside_group() -> None:
    msg = error(base(input={"union": [{"pfs": {"repo": "a", "glob": "/(*)", "group_by": "$1"}}]}))
    assert msg == "input.union[0].pfs.group_by: only applies to a pfs input inside a 'group'"


def test_error_join_missing_join_on() -> None:
    msg = error(
        base(
            input={
                "join": [
                    {"pfs": {"repo": "a", "glob": "/(*)", "join_on": "$1"}},
                    {"pfs": {"repo": "b", "glob": "/(*)"}},
                ]
            }
        )
    )
    assert msg == "input.join[1].pfs.join_on: is required"


def test_error_group_missing_group_by() -> None:
    msg = error(base(input={"group": [{"pfs": {"repo": "a", "glob": "/(*)"}}]}))
    assert msg == "input.group[0].pfs.group_by: is required"


def test_error_join_on_group_out_of_range() -> None:
    msg = error(
        base(
            input={
                "join": [
                    {"pfs": {"repo": "a", "glob": "/(*)", "join_on": "$2"}},
                    {"pfs": {"repo": "b", "glob": "/(*)", "join_on": "$1"}},
                ]
            }
        )
    )
    assert msg.startswith(
        "input.join[0].pfs.join_on: refers to $2 but the glob '/(*)' has no such group"
    )


def test_error_join_on_without_groups_in_glob() -> None:
    msg = error(
        base(
            input={
                "join": [
                    {"pfs": {"repo": "a", "glob": "/*", "join_on": "$1"}},
                    {"pfs": {"repo": "b", "glob": "/(*)", "join_on": "$1"}},
                ]
            }
        )
    )
    assert msg.startswith("input.join[0].pfs.join_on: refers to $1") and "'/(*).csv'" in msg


def test_error_group_by_without_reference() -> None:
    msg = error(base(input={"group": [{"pfs": {"repo": "a", "glob": "/(*)", "group_by": "day"}}]}))
    assert msg.startswith("input.group[0].pfs.group_by: must refer to at least one capture group")


def test_error_join_needs_two_inputs() -> None:
    msg = error(base(input={"join": [{"pfs": {"repo": "a", "glob": "/(*)", "join_on": "$1"}}]}))
    assert msg == "input.join: needs at least 2 inputs"


def test_error_cross_empty_and_not_list() -> None:
    assert error(base(input={"cross": []})) == "input.cross: needs at least 1 input"
    assert (
        error(base(input={"union": {"pfs": {}}}))
        == "input.union: must be a list of inputs, got a mapping"
    )


def test_error_join_of_non_pfs() -> None:
    msg = error(
        base(
            input={"join": [{"pfs": {"repo": "a", "glob": "/(*)", "join_on": "$1"}}, {"cross": []}]}
        )
    )
    assert msg == "input.join[1].cross: a join combines pfs inputs only; use a pfs input here"


def test_error_group_of_cron() -> None:
    msg = error(base(input={"group": [{"cron": {"name": "t", "spec": "@daily"}}]}))
    assert msg == (
        "input.group[0].cron: a group combines pfs and join inputs only; use one of them here"
    )


def test_group_of_a_join_parses_with_join_on_and_group_by() -> None:
    """Pachyderm's group may hold a join (TestIterators/GroupJoin in
    src/server/worker/datum/iterator_test.go); its pfs inputs carry join_on and group_by."""
    join = {
        "join": [
            {"pfs": {"repo": "a", "glob": "/foo(?)(?)", "join_on": "$1$2", "group_by": "$1"}},
            {"pfs": {"repo": "b", "glob": "/foo(?)(?)", "join_on": "$2$1", "group_by": "$2"}},
        ]
    }
    spec = load_spec(
        base(input={"group": [join, {"pfs": {"repo": "c", "glob": "/(*)", "group_by": "$1"}}]})
    )
    group = spec.input
    assert isinstance(group, GroupInput) and isinstance(group.inputs[0], JoinInput)
    assert [p.group_by for p in group.inputs[0].inputs] == ["$1", "$2"]
    missing = {"join": [join["join"][0], {"pfs": {"repo": "b", "glob": "/(*)", "join_on": "$1"}}]}
    assert (
        error(base(input={"group": [missing]}))
        == "input.group[0].join[1].pfs.group_by: is required"
    )
    nested = {"join": [join["join"][0], {"group": []}]}
    assert error(base(input={"group": [nested]})) == (
        "input.group[0].join[1].group: a join combines pfs inputs only; use a pfs input here"
    )


def test_union_inputs_may_share_a_name_others_may_not() -> None:
    """Pachyderm's validateNames (src/server/pps/server/api_server.go): the inputs of a union
    may share a name; an input beside the union may not take any of the union's names."""
    same = {"union": [{"pfs": {"repo": "a", "glob": "/*", "name": "in"}},
                      {"pfs": {"repo": "b", "glob": "/*", "name": "in"}}]}  # fmt: skip
    assert isinstance(load_spec(base(input=same)).input, UnionInput)
    crossed = {"cross": [same, {"pfs": {"repo": "c", "glob": "/", "name": "in"}}]}
    assert error(base(input=crossed)).startswith(
        "input.cross[1].pfs: input name 'in' is also the name of input.cross[0].union[0].pfs"
    )
    before = {"cross": [{"pfs": {"repo": "c", "glob": "/", "name": "in"}}, same]}
    assert error(base(input=before)).startswith(
        "input.cross[1].union[0].pfs: input name 'in' is also the name of input.cross[0].pfs"
    )


def test_error_duplicate_input_names_names_both_paths() -> None:
    msg = error(
        base(
            input={
                "cross": [
                    {"pfs": {"repo": "a", "glob": "/"}},
                    {
                        "union": [
                            {"pfs": {"repo": "b", "glob": "/"}},
                            {"pfs": {"repo": "x", "name": "a", "glob": "/"}},
                        ]
                    },
                ]
            }
        )
    )
    assert msg.startswith(
        "input.cross[1].union[1].pfs: input name 'a' is also the name of input.cross[0].pfs"
    )


def test_error_duplicate_name_between_cron_and_pfs() -> None:
    msg = error(
        base(
            input={
                "cross": [
                    {"pfs": {"repo": "tick", "glob": "/"}},
                    {"cron": {"name": "tick", "spec": "@daily"}},
                ]
            }
        )
    )
    assert msg.startswith(
        "input.cross[1].cron: input name 'tick' is also the name of input.cross[0].pfs"
    )


def test_error_cron_missing_name_and_spec() -> None:
    assert error(base(input={"cron": {"spec": "@daily"}})) == "input.cron.name: is required"
    assert error(base(input={"cron": {"name": "t"}})) == "input.cron.spec: is required"


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("* * * *", "has 5 fields, got 4"),
        ("60 * * * *", "minute field '60': 60 is outside 0-59"),
        ("* 24 * * *", "hour field '24'"),
        ("* * 0 * *", "day of month field '0'"),
        ("* * * foo *", "month field 'foo': cannot read 'foo'"),
        ("* * * * 8", "day of week field '8'"),
        ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "a step must be at least 1"),
        ("? * * * *", "'?' is only allowed"),
        ("@every", "needs a duration"),
        ("@every soon", "must be a positive duration"),
        ("@fortnightly", "unknown schedule"),
    ],
)
def test_error_cron_spec(schedule: str, problem: str) -> None:
    msg = error(base(input={"cron": {"name": "t", "spec": schedule}}))
    assert msg.startswith("input.cron.spec: ") and problem in msg


def test_error_cron_overwrite_not_bool() -> None:
    msg = error(base(input={"cron": {"name": "t", "spec": "@daily", "overwrite": 1}}))
    assert msg == "input.cron.overwrite: must be true or false, got int 1"


def test_error_transform_none_or_two() -> None:
    assert error(base(transform={})) == "transform: give exactly one of python, pipeline or cmd"
    msg = error(base(transform={"python": "a:b", "cmd": ["x"]}))
    assert msg == "transform: give exactly one of python, pipeline or cmd; got python and cmd"


@pytest.mark.parametrize("kind", ["python", "pipeline"])
@pytest.mark.parametrize("target", ["module", "a.b", "a:b:c", "a-b:c", ":f", "m:"])
def test_error_transform_entry_point(kind: str, target: str) -> None:
    msg = error(base(transform={kind: target}))
    assert (
        msg
        == f"transform.{kind}: must be 'module:function', such as 'shop.clean:run', got {target!r}"
    )


def test_error_cmd_not_list_and_item_not_string() -> None:
    assert error(base(transform={"cmd": "python x.py"})).startswith(
        "transform.cmd: must be a non-empty list of strings"
    )
    assert error(base(transform={"cmd": []})).startswith("transform.cmd: must be a non-empty list")
    assert error(base(transform={"cmd": ["python", 3]})) == (
        "transform.cmd[1]: must be a string (quote it), got int 3"
    )


def test_error_stdin_and_env_only_with_cmd() -> None:
    assert error(base(transform={"python": "a:b", "stdin": ["x"]})) == (
        "transform.stdin: only applies to a 'cmd' transform, not 'python'"
    )
    assert error(base(transform={"pipeline": "a:b", "env": {"A": "1"}})) == (
        "transform.env: only applies to a 'cmd' transform, not 'pipeline'"
    )


def test_error_env_values_names_and_reserved() -> None:
    assert error(base(transform={"cmd": ["x"], "env": {"N": 3}})) == (
        "transform.env.N: must be a string (quote it), got int 3"
    )
    assert error(base(transform={"cmd": ["x"], "env": {"1BAD": "x"}})) == (
        "transform.env: '1BAD' is not a valid environment variable name"
    )
    assert error(base(transform={"cmd": ["x"], "env": {"HEADRACE_OUTPUT": "/x"}})).startswith(
        "transform.env.HEADRACE_OUTPUT: is set by headrace"
    )
    assert error(base(transform={"cmd": ["x"], "env": ["A=1"]})).startswith(
        "transform.env: must be a mapping"
    )


def test_error_stdin_items() -> None:
    assert error(base(transform={"cmd": ["x"], "stdin": [1]})) == (
        "transform.stdin[0]: must be a string (quote it), got int 1"
    )


def test_stdin_as_one_string() -> None:
    spec = load_spec(base(transform={"cmd": ["sh"], "stdin": "echo hi"}))
    assert spec.transform.stdin == ("echo hi",)


def test_error_environment() -> None:
    assert error(base(transform={"python": "a:b", "environment": ""})) == (
        "transform.environment: must not be empty"
    )


@pytest.mark.parametrize(("field", "minimum"), [("parallelism", 1), ("datum_tries", 1)])
@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_error_positive_ints(field: str, minimum: int, value: object) -> None:
    msg = error(base(**{field: value}))
    assert msg.startswith(f"{field}: must be ")


@pytest.mark.parametrize("field", ["datum_timeout", "job_timeout"])
@pytest.mark.parametrize("value", [0, -5, "5 minutes", "5x", True, float("inf"), "", [1]])
def test_error_durations(field: str, value: object) -> None:
    msg = error(base(**{field: value}))
    assert msg.startswith(f"{field}: must be a positive duration")


def test_error_output_branch() -> None:
    assert error(base(output_branch="a b")).startswith("output_branch: invalid branch name 'a b'")


@pytest.mark.parametrize("url", ["bucket/out", "relative", "s3:/bucket", 5])
def test_error_egress(url: object) -> None:
    assert error(base(egress=url)).startswith("egress: must be ")


def test_error_salt_not_string() -> None:
    assert error(base(salt=3)) == "salt: must be a string (quote it), got int 3"


def test_error_reprocess() -> None:
    assert error(base(reprocess="always")) == (
        "reprocess: must be 'until_success' or 'every_job', got 'always'"
    )


def test_error_datum_batching() -> None:
    assert (
        error(base(datum_batching="yes")) == "datum_batching: must be true or false, got str 'yes'"
    )
    assert error(base(transform={"cmd": ["x"]}, datum_batching=True)).startswith(
        "datum_batching: a 'cmd' transform runs one process per datum"
    )


def test_error_non_string_key() -> None:
    assert error({1: "x"}) == "spec: field names must be strings, got 1"


def test_from_dict_with_source_prefixes_errors() -> None:
    with pytest.raises(SpecError) as info:
        StageSpec.from_dict(base(parallelism=0), source="stages/clean.yaml")
    assert str(info.value) == "stages/clean.yaml: parallelism: must be at least 1, got 0"
    assert info.value.path == "parallelism"


def _nested_input(depth: int) -> str:
    text = '{"pfs": {"repo": "r", "glob": "/"}}'
    for _ in range(depth):
        text = '{"cross": [' + text + "]}"
    return text


def _nested(depth: int) -> str:
    return '{"name": "s", "input": ' + _nested_input(depth) + ', "transform": {"cmd": ["true"]}}'


def test_a_spec_nested_thousands_deep_is_a_spec_error_naming_the_file(tmp_path) -> None:
    """Issue 13 item 8: a 5,000-deep spec gave 'maximum recursion depth exceeded' and no file."""
    for suffix, text in [
        (".json", _nested(5000)),
        (".yaml", 'name: s\ntransform: {cmd: ["true"]}\ninput: ' + _nested_input(5000)),
    ]:
        path = tmp_path / f"deep{suffix}"
        path.write_text(text)
        with pytest.raises(SpecError) as info:
            load_spec(path)
        assert str(info.value).startswith(f"{path}: nests too deeply")
    deep = {"pfs": {"repo": "r", "glob": "/"}}
    for _ in range(5000):
        deep = {"cross": [deep]}
    with pytest.raises(SpecError, match="nest"):
        load_spec({"name": "s", "input": deep, "transform": {"cmd": ["true"]}})


def test_inputs_nest_at_most_64_levels() -> None:
    assert load_spec(_nested(63)).name == "s"
    with pytest.raises(SpecError, match=r"^input(\.cross\[0\]){64}: inputs nest more than 64"):
        load_spec(_nested(64))
