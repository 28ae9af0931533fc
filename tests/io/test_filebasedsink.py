"""Sharded file output: shard names, temp files, commit renames, abort cleanup."""

from __future__ import annotations

import pickle
import uuid

import cloudpickle
import pytest

from headrace.io.filebasedsink import (
    TEMP_DIR_PREFIX,
    AssignShardsDoFn,
    FileBasedSink,
    FileFinalizer,
    _WriteBundlesDoFn,
    _WriteShardsDoFn,
    shard_name,
)
from headrace.io.filesystem import match_files
from headrace.io.lines import TextSink


def _files(directory) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def _temp_dirs(directory) -> list:
    return [p for p in directory.iterdir() if p.name.startswith(TEMP_DIR_PREFIX)]


@pytest.mark.parametrize(
    ("template", "index", "count", "expected"),
    [
        ("-SSSSS-of-NNNNN", 0, 1, "-00000-of-00001"),
        ("-SSSSS-of-NNNNN", 12, 100000, "-00012-of-100000"),
        ("_S_N", 3, 7, "_3_7"),
        ("-SS", 4, 9, "-04"),
        ("", 0, 1, ""),
    ],
)
def test_shard_name(template, index, count, expected):
    assert shard_name(template, index, count) == expected


def test_template_without_shard_number_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="shard_name_template"):
        TextSink(str(tmp_path / "out"), shard_name_template="-of-NNN")


def test_empty_template_means_one_unsharded_file(tmp_path):
    sink = TextSink(str(tmp_path / "out"), file_name_suffix=".txt", shard_name_template="")
    assert sink.num_shards == 1
    assert sink.final_path(0, 1) == str(tmp_path / "out.txt")


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_num_shards(tmp_path, bad):
    with pytest.raises(ValueError, match="num_shards"):
        TextSink(str(tmp_path / "out"), num_shards=bad)


def test_bad_prefix():
    with pytest.raises(ValueError, match="file_path_prefix"):
        TextSink("")


def test_one_file_per_bundle_named_at_commit(tmp_path, run_sink):
    sink = TextSink(str(tmp_path / "out" / "part"), file_name_suffix=".txt")
    run_sink(sink, [["a", "b"], [], ["c"]])
    files = _files(tmp_path / "out")
    assert sorted(files) == ["part-00000-of-00002.txt", "part-00001-of-00002.txt"]
    assert sorted(files.values()) == [b"a\nb\n", b"c\n"]
    assert _temp_dirs(tmp_path / "out") == []


def test_empty_input_writes_one_empty_shard_with_header(tmp_path, run_sink):
    sink = TextSink(str(tmp_path / "o"), header="h", footer="f")
    run_sink(sink, [[], []])
    assert _files(tmp_path) == {"o-00000-of-00001": b"h\nf\n"}


def test_skip_if_empty_writes_nothing(tmp_path, run_sink):
    sink = TextSink(str(tmp_path / "o"))
    sink.skip_if_empty = True
    run_sink(sink, [[]])
    assert _files(tmp_path) == {}


def test_fixed_num_shards_distributes_and_fills_empty_shards(tmp_path, run_sink):
    sink = TextSink(str(tmp_path / "o"), num_shards=4)
    run_sink(sink, [list(range(10)), list(range(10, 12))])
    files = _files(tmp_path)
    assert sorted(files) == [f"o-0000{i}-of-00004" for i in range(4)]
    lines = sorted(int(x) for body in files.values() for x in body.split())
    assert lines == list(range(12))
    assert all(len(body.split()) >= 2 for body in files.values())  # round robin balances

    sink = TextSink(str(tmp_path / "few"), num_shards=3, header="H")
    run_sink(sink, [["only"]])
    files = {k: v for k, v in _files(tmp_path).items() if k.startswith("few")}
    assert sorted(files.values()) == [b"H\n", b"H\n", b"H\nonly\n"]


def test_round_robin_starts_at_random_shard():
    fn = AssignShardsDoFn(5)
    starts = set()
    for _ in range(50):
        fn.start_bundle()
        keys = [k for x in range(7) for k, _ in fn.process(x)]
        assert keys == [(keys[0] + i) % 5 for i in range(7)]
        starts.add(keys[0])
    assert len(starts) > 1


def test_commit_rejects_duplicate_shards(tmp_path):
    sink = TextSink(str(tmp_path / "o"), num_shards=2)
    fin = FileFinalizer(sink, str(tmp_path / ".headrace-temp-x"))
    with pytest.raises(ValueError, match="shard 1 was written twice"):
        fin.final_paths([(1, "a"), (1, "b")])


def test_files_appear_only_at_commit_and_abort_removes_everything(tmp_path):
    sink = TextSink(str(tmp_path / "o"))
    temp_dir = str(tmp_path / (TEMP_DIR_PREFIX + uuid.uuid4().hex))
    fn = _WriteBundlesDoFn(sink, temp_dir)
    fn.start_bundle()
    assert _files(tmp_path) == {}  # nothing before the first element
    fn.process("x")
    records = list(fn.finish_bundle())
    assert len(records) == 1 and records[0][0] is None
    assert not list(tmp_path.glob("o*"))  # only a temp file so far
    assert len(_temp_dirs(tmp_path)) == 1
    FileFinalizer(sink, temp_dir).abort(records)
    assert _files(tmp_path) == {}
    assert _temp_dirs(tmp_path) == []


def test_abort_without_any_write_is_quiet(tmp_path):
    sink = TextSink(str(tmp_path / "o"))
    FileFinalizer(sink, str(tmp_path / (TEMP_DIR_PREFIX + "never"))).abort([])
    assert list(tmp_path.iterdir()) == []


def test_teardown_discards_a_half_written_file(tmp_path):
    sink = TextSink(str(tmp_path / "o"))
    temp_dir = str(tmp_path / (TEMP_DIR_PREFIX + "t"))
    fn = _WriteBundlesDoFn(sink, temp_dir)
    fn.start_bundle()
    fn.process("x")
    fn.teardown()  # the bundle failed before finish_bundle
    assert _files(tmp_path) == {}


def test_write_shards_dofn_discards_on_error(tmp_path):
    sink = TextSink(str(tmp_path / "o"))
    temp_dir = str(tmp_path / (TEMP_DIR_PREFIX + "t"))

    def values():
        yield "a"
        raise RuntimeError("upstream failed")

    with pytest.raises(RuntimeError, match="upstream failed"):
        list(_WriteShardsDoFn(sink, temp_dir).process((0, values())))
    assert _files(tmp_path) == {}


def test_commit_replaces_existing_output(tmp_path, run_sink):
    (tmp_path / "o.txt").write_bytes(b"stale")
    run_sink(
        TextSink(str(tmp_path / "o"), file_name_suffix=".txt", shard_name_template=""), [["new"]]
    )
    assert _files(tmp_path) == {"o.txt": b"new\n"}


def test_memory_filesystem_output(run_sink):
    base = f"memory://sink-{uuid.uuid4().hex}"
    run_sink(TextSink(f"{base}/out/r", num_shards=2), [["1", "2", "3"]])
    names = [m.path.rsplit("/", 1)[1] for m in match_files(f"{base}/**")]
    assert names == ["r-00000-of-00002", "r-00001-of-00002"]


def test_gzip_by_suffix(tmp_path, run_sink):
    import gzip

    run_sink(
        TextSink(str(tmp_path / "o"), file_name_suffix=".txt.gz", shard_name_template=""), [["a"]]
    )
    assert gzip.decompress((tmp_path / "o.txt.gz").read_bytes()) == b"a\n"


def test_base_sink_needs_open_writer(tmp_path):
    with pytest.raises(NotImplementedError, match="open_writer"):
        FileBasedSink(str(tmp_path / "o")).open_writer("x")


def test_write_machinery_pickles(tmp_path):
    sink = TextSink(str(tmp_path / "o"), header="h")
    temp_dir = str(tmp_path / (TEMP_DIR_PREFIX + "p"))
    fn = _WriteBundlesDoFn(sink, temp_dir)
    fn.start_bundle()
    fn.process("in-flight state must not travel")
    objects = [
        sink,
        fn,
        AssignShardsDoFn(3),
        _WriteShardsDoFn(sink, temp_dir),
        FileFinalizer(sink, temp_dir),
    ]
    for obj in objects:
        for dumps in (pickle.dumps, cloudpickle.dumps):
            clone = pickle.loads(dumps(obj))
            assert type(clone) is type(obj)
    clone = pickle.loads(pickle.dumps(fn))
    clone.start_bundle()
    clone.process("y")
    [(_, path)] = list(clone.finish_bundle())
    FileFinalizer(sink, temp_dir).commit([(None, path)])
    assert (tmp_path / "o-00000-of-00001").read_bytes() == b"h\ny\n"
    fn.teardown()
