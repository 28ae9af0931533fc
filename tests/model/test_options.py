from __future__ import annotations

import pickle

import cloudpickle
import pytest

from headrace.model.options import (
    DebugOptions,
    DirectOptions,
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    TypeOptions,
)


class _TestOptsA(PipelineOptions):
    """Module-level user subclass, so it pickles by reference."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--tao_input", default="in.txt")
        parser.add_value_provider_argument("--tao_count", type=int, default=7)
        parser.add_argument("--tao_flag", action="store_true")


class _TestOptsB(_TestOptsA):
    """Subclass of a subclass: its view shows its own and its parent's options."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--tob_mode", choices=["fast", "slow"], default="fast")


# -- parsing -----------------------------------------------------------------------------------


def test_defaults_of_builtin_views():
    opts = PipelineOptions([])
    assert opts.view_as(StandardOptions).runner is None
    assert opts.view_as(StandardOptions).streaming is False
    direct = opts.view_as(DirectOptions)
    assert direct.direct_num_workers == 1
    assert direct.direct_running_mode == "in_memory"
    assert direct.direct_memory_budget_mb == 256
    assert direct.direct_bundle_size == 1024
    setup = opts.view_as(SetupOptions)
    assert setup.save_main_session is False
    assert setup.pickle_library == "cloudpickle"
    assert setup.requirements_file is None
    assert opts.view_as(DebugOptions).experiments is None
    types = opts.view_as(TypeOptions)
    assert types.pipeline_type_check is True
    assert types.runtime_type_check is False


def test_flags_are_parsed_with_types_and_actions():
    opts = PipelineOptions(
        [
            "--runner=DirectRunner",
            "--streaming",
            "--direct_num_workers",
            "3",
            "--direct_running_mode=multi_processing",
            "--direct_memory_budget_mb=64",
            "--direct_bundle_size=10",
            "--save_main_session",
            "--experiments=a",
            "--experiments=b=2",
            "--no_pipeline_type_check",
            "--runtime_type_check",
        ]
    )
    assert opts.view_as(StandardOptions).runner == "DirectRunner"
    assert opts.view_as(StandardOptions).streaming is True
    direct = opts.view_as(DirectOptions)
    assert direct.direct_num_workers == 3
    assert direct.direct_running_mode == "multi_processing"
    assert direct.direct_memory_budget_mb == 64
    assert direct.direct_bundle_size == 10
    assert opts.view_as(SetupOptions).save_main_session is True
    debug = opts.view_as(DebugOptions)
    assert debug.experiments == ["a", "b=2"]
    assert debug.lookup_experiment("a") is True
    assert debug.lookup_experiment("b") == "2"
    assert debug.lookup_experiment("c", "none") == "none"
    assert opts.view_as(TypeOptions).pipeline_type_check is False
    assert opts.view_as(TypeOptions).runtime_type_check is True


def test_options_readable_on_base_object():
    opts = PipelineOptions(["--runner=X"])
    assert opts.runner == "X"
    assert opts.direct_num_workers == 1


def test_unknown_flags_are_kept_and_ignored():
    flags = ["script.py", "--my_own=1", "--other", "value", "--switch", "--runner=R", "-v"]
    opts = PipelineOptions(flags)
    assert opts.view_as(StandardOptions).runner == "R"
    with pytest.raises(AttributeError, match="my_own"):
        _ = opts.my_own
    everything = opts.get_all_options(retain_unknown_options=True)
    assert everything["my_own"] == "1"
    assert everything["other"] == "value"
    assert everything["switch"] is True
    assert "my_own" not in opts.get_all_options()


def test_no_prefix_abbreviation_of_options():
    # A user's own "--run" flag must not be taken for "--runner".
    opts = PipelineOptions(["--run=fast"])
    assert opts.view_as(StandardOptions).runner is None


def test_keywords_override_flags():
    opts = PipelineOptions(["--runner=FromFlag", "--direct_num_workers=2"], runner="FromKw")
    assert opts.view_as(StandardOptions).runner == "FromKw"
    assert opts.view_as(DirectOptions).direct_num_workers == 2


def test_keyword_strings_are_converted_like_flags():
    opts = PipelineOptions(direct_num_workers="5", tao_count="9")
    assert opts.view_as(DirectOptions).direct_num_workers == 5
    assert opts.view_as(_TestOptsA).tao_count == 9


def test_unknown_keyword_options_are_kept_and_readable():
    opts = PipelineOptions(job_tag="nightly")
    assert opts.job_tag == "nightly"
    assert opts.view_as(StandardOptions).job_tag == "nightly"
    assert "job_tag" not in opts.get_all_options()
    assert opts.get_all_options(retain_unknown_options=True)["job_tag"] == "nightly"
    opts.job_tag = "weekly"  # known now, so assignable
    assert opts.view_as(DirectOptions).job_tag == "weekly"


def test_flags_as_a_single_string_is_rejected():
    with pytest.raises(TypeError, match="list of strings"):
        PipelineOptions("--runner=X")


# -- user subclasses and views ---------------------------------------------------------------------


def test_user_subclass_flags_and_view():
    opts = PipelineOptions(["--tao_input=data.txt", "--tao_flag", "--tob_mode=slow"])
    a = opts.view_as(_TestOptsA)
    assert (a.tao_input, a.tao_count, a.tao_flag) == ("data.txt", 7, True)
    b = opts.view_as(_TestOptsB)
    assert (b.tao_input, b.tob_mode) == ("data.txt", "slow")


def test_subclass_defined_after_construction_is_honoured():
    opts = PipelineOptions(["--late_opt=42", "--runner=R"], late_kw="5")

    class LateOptions(PipelineOptions):
        @classmethod
        def _add_argparse_args(cls, parser):
            parser.add_argument("--late_opt", type=int, default=0)
            parser.add_argument("--late_kw", type=int, default=0)
            parser.add_argument("--late_default", default="d")

    late = opts.view_as(LateOptions)
    assert late.late_opt == 42
    assert late.late_kw == 5  # the keyword, now declared, is converted to the declared type
    assert late.late_default == "d"
    assert opts.get_all_options()["late_opt"] == 42


def test_subclass_defined_after_construction_readable_without_view():
    opts = PipelineOptions(["--late2=x"])

    class Late2Options(PipelineOptions):
        @classmethod
        def _add_argparse_args(cls, parser):
            parser.add_argument("--late2")

    assert opts.late2 == "x"


def test_view_as_shares_values_between_views():
    opts = PipelineOptions([])
    direct = opts.view_as(DirectOptions)
    other = opts.view_as(DirectOptions)
    direct.direct_num_workers = 4
    assert other.direct_num_workers == 4
    assert opts.direct_num_workers == 4
    assert opts.view_as(StandardOptions).view_as(DirectOptions).direct_num_workers == 4
    opts.view_as(StandardOptions).streaming = True
    assert direct.view_as(StandardOptions).streaming is True


def test_view_as_rejects_non_options_class():
    with pytest.raises(TypeError, match="PipelineOptions subclass"):
        PipelineOptions().view_as(dict)  # type: ignore[type-var]


def test_constructing_subclass_directly():
    a = _TestOptsA(["--tao_count=3"], runner="R")
    assert a.tao_count == 3
    assert a.view_as(StandardOptions).runner == "R"


def test_duplicate_option_in_two_subclasses_does_not_error():
    class Dup1(PipelineOptions):
        @classmethod
        def _add_argparse_args(cls, parser):
            parser.add_argument("--dup_opt", default="one")

    class Dup2(PipelineOptions):
        @classmethod
        def _add_argparse_args(cls, parser):
            parser.add_argument("--dup_opt", default="two")

    opts = PipelineOptions(["--dup_opt=given"])
    assert opts.view_as(Dup1).dup_opt == "given"
    assert opts.view_as(Dup2).dup_opt == "given"


def test_required_option_is_checked_only_for_its_view():
    class NeedsInput(PipelineOptions):
        @classmethod
        def _add_argparse_args(cls, parser):
            parser.add_argument("--needs_input_path", required=True)

    opts = PipelineOptions([])  # other options objects are not broken by the required option
    with pytest.raises(ValueError, match="NeedsInput requires option.*--needs_input_path"):
        opts.view_as(NeedsInput)
    assert PipelineOptions(["--needs_input_path=x"]).view_as(NeedsInput).needs_input_path == "x"
    assert NeedsInput(needs_input_path="y").needs_input_path == "y"


# -- attribute errors ------------------------------------------------------------------------------


def test_getattr_unknown_option_names_it():
    opts = PipelineOptions([])
    with pytest.raises(AttributeError, match="no option 'not_there'"):
        _ = opts.view_as(StandardOptions).not_there
    assert not hasattr(opts, "not_there")


def test_setattr_unknown_option_names_it():
    opts = PipelineOptions([])
    with pytest.raises(AttributeError, match="unknown pipeline option 'not_there'"):
        opts.not_there = 1


def test_setattr_known_option_of_another_view():
    opts = PipelineOptions([])
    opts.view_as(StandardOptions).direct_num_workers = 2
    assert opts.view_as(DirectOptions).direct_num_workers == 2


def test_add_experiment():
    debug = PipelineOptions(["--experiments=x"]).view_as(DebugOptions)
    debug.add_experiment("y")
    debug.add_experiment("x")
    assert debug.experiments == ["x", "y"]


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["direct_num_workers", "direct_memory_budget_mb", "direct_bundle_size"]
)
@pytest.mark.parametrize("bad", ["0", "-3", "many", "1.5"])
def test_bad_flag_value_raises_value_error_naming_option(name, bad):
    with pytest.raises(ValueError, match=rf"--{name}.*{bad}") as info:
        PipelineOptions([f"--{name}={bad}"])
    assert not isinstance(info.value, SystemExit)


@pytest.mark.parametrize(
    "name", ["direct_num_workers", "direct_memory_budget_mb", "direct_bundle_size"]
)
@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "x"])
def test_bad_keyword_value_raises_value_error_naming_option(name, bad):
    with pytest.raises(ValueError, match=rf"'{name}'.*{bad!r}"):
        PipelineOptions(**{name: bad})


def test_bad_assigned_value_raises_and_keeps_old_value():
    direct = PipelineOptions([]).view_as(DirectOptions)
    with pytest.raises(ValueError, match=r"'direct_num_workers'.*got 0"):
        direct.direct_num_workers = 0
    assert direct.direct_num_workers == 1


def test_bad_choice_raises_value_error():
    with pytest.raises(ValueError, match=r"direct_running_mode.*'threads'"):
        PipelineOptions(["--direct_running_mode=threads"])
    with pytest.raises(ValueError, match=r"'direct_running_mode'.*'threads' is not one of"):
        PipelineOptions(direct_running_mode="threads")
    with pytest.raises(ValueError, match=r"'pickle_library'"):
        PipelineOptions(pickle_library="marshal")


def test_bool_option_keyword_must_be_bool():
    with pytest.raises(ValueError, match=r"'streaming'.*True or False.*'false'"):
        PipelineOptions(streaming="false")


def test_flag_missing_its_value_raises_value_error():
    with pytest.raises(ValueError, match="--runner"):
        PipelineOptions(["--runner"])


def test_experiments_keyword_string_becomes_list():
    assert PipelineOptions(experiments="a").view_as(DebugOptions).experiments == ["a"]


# -- get_all_options / from_dictionary / display ---------------------------------------------------


def test_get_all_options_and_drop_default():
    opts = PipelineOptions(["--runner=R", "--direct_num_workers=1"], streaming=True)
    every = opts.get_all_options()
    for name in ("runner", "streaming", "direct_num_workers", "pickle_library", "experiments"):
        assert name in every
    assert every["runner"] == "R"
    non_default = opts.get_all_options(drop_default=True)
    assert non_default["runner"] == "R"
    assert non_default["streaming"] is True
    assert "direct_num_workers" not in non_default  # given, but equal to the default
    assert "pickle_library" not in non_default


def test_from_dictionary_round_trip():
    opts = PipelineOptions(["--runner=R", "--experiments=e1"], direct_num_workers=3, extra="k")
    copy = PipelineOptions.from_dictionary(opts.get_all_options(retain_unknown_options=True))
    assert copy.get_all_options(retain_unknown_options=True) == opts.get_all_options(
        retain_unknown_options=True
    )
    assert copy.view_as(DirectOptions).direct_num_workers == 3
    assert copy.extra == "k"
    # the copy is independent
    copy.view_as(StandardOptions).runner = "Other"
    assert opts.view_as(StandardOptions).runner == "R"


def test_from_dictionary_on_subclass_and_validation():
    a = _TestOptsA.from_dictionary({"tao_count": 2})
    assert isinstance(a, _TestOptsA)
    assert a.tao_count == 2
    with pytest.raises(ValueError, match="direct_bundle_size"):
        PipelineOptions.from_dictionary({"direct_bundle_size": 0})


def test_display_data_shows_non_defaults():
    opts = PipelineOptions(["--runner=R", "--mine=1"], tag="t")
    shown = opts.display_data()
    assert shown["runner"] == "R"
    assert shown["mine"] == "1"
    assert shown["tag"] == "t"
    assert "direct_num_workers" not in shown


def test_repr_of_view_and_base():
    opts = PipelineOptions(["--runner=R"])
    assert repr(opts.view_as(StandardOptions)) == "StandardOptions(runner='R', streaming=False)"
    assert "runner='R'" in repr(opts)
    assert repr(opts).startswith("PipelineOptions(")
    assert "direct_num_workers" not in repr(opts)


# -- pickling --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_pickle_round_trip_keeps_values_and_views(dumps):
    opts = PipelineOptions(["--runner=R", "--tao_count=5", "--unknown_flag=u"], tag="t")
    direct = opts.view_as(DirectOptions)
    direct.direct_num_workers = 6
    a = opts.view_as(_TestOptsA)
    restored_opts, restored_direct, restored_a = pickle.loads(dumps((opts, direct, a)))
    assert type(restored_direct) is DirectOptions
    assert type(restored_a) is _TestOptsA
    assert restored_direct.direct_num_workers == 6
    assert restored_a.tao_count == 5
    assert restored_opts.tag == "t"
    assert restored_opts.get_all_options(retain_unknown_options=True)["unknown_flag"] == "u"
    assert restored_opts.view_as(StandardOptions).runner == "R"
    # views unpickled together still share one set of values
    restored_direct.direct_num_workers = 2
    assert restored_opts.view_as(DirectOptions).direct_num_workers == 2
    assert restored_a.direct_num_workers == 2
    # and are independent of the originals
    assert direct.direct_num_workers == 6


def test_single_view_pickles_and_can_view_others():
    a = PipelineOptions(["--tao_input=z"], runner="R").view_as(_TestOptsA)
    restored = pickle.loads(pickle.dumps(a))
    assert restored.tao_input == "z"
    assert restored.view_as(StandardOptions).runner == "R"


def test_cloudpickle_of_local_subclass():
    class LocalOptions(PipelineOptions):
        @classmethod
        def _add_argparse_args(cls, parser):
            parser.add_argument("--local_thing", default="lt")

    view = PipelineOptions(["--local_thing=v"]).view_as(LocalOptions)
    restored = cloudpickle.loads(cloudpickle.dumps(view))
    assert restored.local_thing == "v"


def test_unknown_flag_with_negative_number_value():
    opts = PipelineOptions(["--offset", "-3", "--quiet"])
    everything = opts.get_all_options(retain_unknown_options=True)
    assert everything["offset"] == "-3"
    assert everything["quiet"] is True


def test_flags_default_to_sys_argv(monkeypatch):
    monkeypatch.setattr("sys.argv", ["script.py", "--runner=FromArgv", "--own=1"])
    assert PipelineOptions().view_as(StandardOptions).runner == "FromArgv"
    assert PipelineOptions([]).view_as(StandardOptions).runner is None


# -- errors a user can read; unknown flags are reported ------------------------------------------
# Beam: apache_beam/options/pipeline_options.py, PipelineOptions.get_all_options logs
# "Discarding unparseable args: [...]" on its module's logger for flags no options class declares
# (and keeps going). headrace does the same per unknown --option, once, with a close match.


def test_option_errors_are_pipeline_options_errors_naming_option_and_accepted_values():
    from headrace.model.options import PipelineOptionsError

    with pytest.raises(PipelineOptionsError) as flag:
        PipelineOptions(["--direct_running_mode=threads"])
    assert flag.value.option == "direct_running_mode"
    message = str(flag.value)
    assert "\n" not in message
    assert message.startswith("Invalid pipeline option --direct_running_mode:")
    for accepted in ("in_memory", "multi_threading", "multi_processing"):
        assert accepted in message
    with pytest.raises(PipelineOptionsError) as keyword:
        PipelineOptions(direct_num_workers=0)
    assert keyword.value.option == "direct_num_workers"
    assert isinstance(keyword.value, ValueError)  # Beam code catching ValueError still works


def test_unknown_runner_is_an_options_error_listing_the_runners():
    from headrace.model.options import PipelineOptionsError
    from headrace.model.pipeline import resolve_runner

    with pytest.raises(PipelineOptionsError, match=r"unknown runner 'FlinkRunner'") as info:
        resolve_runner("FlinkRunner")
    assert "DirectRunner" in str(info.value) and "RayRunner" in str(info.value)
    assert info.value.option == "runner"


def test_runner_help_names_only_runners_that_exist():
    from headrace.model.options import _build_parser

    parser = _build_parser([StandardOptions])
    (action,) = [a for a in parser._actions if a.dest == "runner"]
    assert "DirectRunner" in action.help and "RayRunner" in action.help


def test_misspelled_flag_is_reported_once_with_a_close_match(caplog):
    opts = PipelineOptions(["--direct_num_worker=2", "--no_such_thing", "positional"])
    with caplog.at_level("WARNING", logger="headrace.model.options"):
        opts.get_all_options()
        opts.get_all_options()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "--direct_num_worker=2" in messages[0]
    assert "did you mean --direct_num_workers?" in messages[0]
    assert "--no_such_thing" in messages[1]
    assert "did you mean" not in messages[1]
    assert all(r.name == "headrace.model.options" for r in caplog.records)


def test_declared_flags_and_retained_unknown_options_are_not_reported(caplog):
    with caplog.at_level("WARNING", logger="headrace.model.options"):
        PipelineOptions(["--direct_num_workers=2", "--tao_input=x"]).get_all_options()
        PipelineOptions(["--mine=1"]).get_all_options(retain_unknown_options=True)
    assert caplog.records == []
