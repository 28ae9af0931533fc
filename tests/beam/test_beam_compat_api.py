"""Beam API names that Beam's examples and tests use: the coder registry, FileSystems,
TestPipeline.get_full_options_as_args, the runner module paths."""

from __future__ import annotations

import pytest

import headrace.beam as beam
from headrace.beam.coders import Coder, registry
from headrace.beam.io.filesystems import BeamIOError, FileSystems
from headrace.beam.runners.runner import PipelineResult, PipelineState
from headrace.beam.testing.test_pipeline import TestPipeline
from headrace.model.coder_registry import CoderRegistry


class Player:
    def __init__(self, name):
        self.name = name


class PlayerCoder(Coder):
    def encode(self, value):
        return value.name.encode()

    def decode(self, encoded):
        return Player(encoded.decode())


def test_register_coder_and_get_coder() -> None:
    """Beam's cookbook group_with_coder registers ``coders.registry.register_coder(Player,
    PlayerCoder)``; get_coder gives standard coders for builtins and typing hints
    (apache_beam/coders/typecoders.py)."""
    reg = CoderRegistry()
    reg.register_coder(Player, PlayerCoder)
    coder = reg.get_coder(Player)
    assert isinstance(coder, PlayerCoder)
    assert coder.decode(coder.encode(Player("ada"))).name == "ada"
    assert reg.get_coder(int) == beam.coders.VarIntCoder()
    assert reg.get_coder(tuple[str, int]) == beam.coders.TupleCoder(
        [beam.coders.StrUtf8Coder(), beam.coders.VarIntCoder()]
    )
    assert reg.get_coder(list[float]) == beam.coders.ListCoder(beam.coders.FloatCoder())
    assert reg.get_coder(int | None) == beam.coders.NullableCoder(beam.coders.VarIntCoder())
    assert isinstance(reg.get_coder(object), beam.coders.FastPrimitivesCoder)
    assert reg.custom_types == [Player]
    with pytest.raises(TypeError, match="Coder class"):
        reg.register_coder(Player, PlayerCoder())
    assert beam.coders.registry is registry


def test_to_bytes_coder() -> None:
    coder = beam.coders.ToBytesCoder()
    assert (coder.encode("é"), coder.encode(b"x"), coder.encode(3)) == ("é".encode(), b"x", b"3")


def test_filesystems_roundtrip(tmp_path) -> None:
    """Beam's wordcount tests use FileSystems.open/match/join/create/exists/delete."""
    path = FileSystems.join(str(tmp_path), "sub", "a.txt.gz")
    FileSystems.mkdirs(FileSystems.split(path)[0])
    with FileSystems.create(path) as f:
        f.write(b"one\ntwo\n")
    assert FileSystems.exists(path)
    with FileSystems.open(path) as f:  # AUTO: .gz is decompressed
        assert f.read() == b"one\ntwo\n"
    [result] = FileSystems.match([FileSystems.join(str(tmp_path), "sub", "*.gz")])
    assert [m.path for m in result.metadata_list] == [path]
    [nothing] = FileSystems.match([str(tmp_path / "none-*")])
    assert nothing.metadata_list == []
    copy = FileSystems.join(str(tmp_path), "copy.gz")
    FileSystems.copy([path], [copy])
    FileSystems.rename([copy], [copy + ".moved"])
    assert FileSystems.exists(copy + ".moved") and not FileSystems.exists(copy)
    FileSystems.delete([path])
    assert not FileSystems.exists(path)
    with pytest.raises(BeamIOError):
        FileSystems.delete([path])


def test_get_full_options_as_args() -> None:
    """Beam's example tests build argv with TestPipeline().get_full_options_as_args(...)."""
    p = TestPipeline(argv=["--test-pipeline-options=--runner=DirectRunner"])
    assert p.get_full_options_as_args(input="in.txt", output="out", flag=True, off=None) == [
        "--runner=DirectRunner",
        "--input=in.txt",
        "--output=out",
        "--flag",
    ]


def test_test_pipeline_options_skip_and_get_option() -> None:
    """Beam's TestPipeline (apache_beam/testing/test_pipeline.py and its test): flags come from
    ``--test-pipeline-options``; an integration test without them is skipped."""
    import unittest

    p = TestPipeline(argv=["--test-pipeline-options=--job=mockJob --male --age=1"])
    assert sorted(p.get_full_options_as_args()) == ["--age=1", "--job=mockJob", "--male"]
    assert p.get_option("job") == "mockJob" and p.get_option("missing") is None
    with pytest.raises(unittest.SkipTest, match="IT is skipped"):
        TestPipeline(argv=[], is_integration_test=True)
    assert TestPipeline(argv=["--x=1"]).options_list == []


def test_runner_module_paths() -> None:
    assert PipelineResult is beam.runners.PipelineResult
    assert PipelineState.DONE == "DONE"
    with TestPipeline(argv=[]) as p:
        _ = p | beam.Create([1])
    assert p.result is not None and p.result.state == PipelineState.DONE


def test_google_cloud_and_streaming_options_parse() -> None:
    """Beam's mobile-gaming examples read ``view_as(GoogleCloudOptions).project``; Beam's
    ptransform_test sets ``StreamingOptions.update_compatibility_version``."""
    from headrace.beam.options.pipeline_options import (
        GoogleCloudOptions,
        PipelineOptions,
        StreamingOptions,
    )

    opts = PipelineOptions(["--project=demo", "--region=eu"])
    assert opts.view_as(GoogleCloudOptions).project == "demo"
    assert opts.view_as(GoogleCloudOptions).region == "eu"
    assert PipelineOptions([]).view_as(GoogleCloudOptions).project is None
    assert opts.view_as(StreamingOptions).update_compatibility_version is None
