"""Fixtures for the IO tests: driving a sink's write DoFns and finalizer without a runner."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from headrace.io.filebasedsink import (
    TEMP_DIR_PREFIX,
    AssignShardsDoFn,
    FileBasedSink,
    FileFinalizer,
    _WriteBundlesDoFn,
    _WriteShardsDoFn,
)
from headrace.io.filesystem import dirname, join


def write_with_sink(sink: FileBasedSink, bundles: list[list]) -> FileFinalizer:
    """Run the write steps of ``WriteFiles`` by hand (one DoFn lifecycle per bundle) and commit."""
    temp_dir = join(dirname(sink.file_path_prefix), TEMP_DIR_PREFIX + uuid.uuid4().hex)
    records: list = []
    if sink.num_shards == 0:
        fn = _WriteBundlesDoFn(sink, temp_dir)
        fn.setup()
        for bundle in bundles:
            fn.start_bundle()
            for element in bundle:
                assert fn.process(element) is None
            records.extend(fn.finish_bundle() or [])
        fn.teardown()
    else:
        assign = AssignShardsDoFn(sink.num_shards)
        groups: dict[int, list] = {}
        for bundle in bundles:
            assign.start_bundle()
            for element in bundle:
                for key, value in assign.process(element):
                    groups.setdefault(key, []).append(value)
        writer = _WriteShardsDoFn(sink, temp_dir)
        for key, values in groups.items():
            records.extend(writer.process((key, values)))
    finalizer = FileFinalizer(sink, temp_dir)
    finalizer.commit(records)
    return finalizer


@pytest.fixture
def run_sink() -> Callable[[FileBasedSink, list[list]], FileFinalizer]:
    return write_with_sink
