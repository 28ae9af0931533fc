"""ReadFromRepo and WriteToRepo: pipelines over the versioned store, commit-on-success, splits."""

from __future__ import annotations

import functools
import gzip
import pickle
import random

import cloudpickle
import pytest

import headrace.beam as beam
from headrace.io import ReadFromRepo, WriteToRepo
from headrace.io.repoio import (
    _RepoFinalizer,
    _RepoSource,
    _StoreLocation,
    _WriteFilesDoFn,
    _WriteTextBundlesDoFn,
)
from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import Create, GroupByKey, Map
from headrace.store.errors import (
    CommitNotFound,
    Conflict,
    InvalidReference,
    RepoNotFound,
    StoreError,
)
from headrace.store.store import Store
from headrace.testing.util import assert_that, equal_to

MULTI = {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}


@pytest.fixture
def home(tmp_path):
    return str(tmp_path / "store")


@pytest.fixture
def store(home):
    s = Store.open(home)
    yield s
    s.close()


@functools.cache
def _big_text(lines: int, seed: int = 7) -> bytes:
    """Text large enough to be stored in several content-defined chunks."""
    rng = random.Random(seed)
    return b"".join(f"{i} {rng.getrandbits(64):x}\n".encode() for i in range(lines))


@pytest.fixture
def inputs(store):
    """Repo ``in`` with small files in folders and one large multi-chunk file."""
    store.create_repo("in")
    files = {
        "/a.txt": b"alpha\nbeta\n",
        "/b.csv": b"x,1\ny,2",
        "/data/c.csv": b"z,3\n",
        "/data/deep/d.txt": b"",
        "/data/deep/e.csv": b"w,4\r\nv,5\r\n",
        "/big.txt": _big_text(300_000),
    }
    store.put_files("in@master", list(files.items()), message="inputs")
    return files


def _contents(store: Store, ref: str) -> dict[str, bytes]:
    return {
        f.path: store.get_file(f"{ref}:{f.path}") for f in store.list_files(ref, recursive=True)
    }


def _lines_of(data: bytes) -> list[str]:
    return data.decode().replace("\r\n", "\n").splitlines()


# -- reading ----------------------------------------------------------------------------------


def test_big_input_file_is_chunked(store, inputs):
    # The split and range tests below rely on the large file having several chunks.
    from headrace.store.content import Content

    info = store.inspect_file("in@master:/big.txt")
    with store.meta.read() as conn:
        layout = Content.from_json(store.meta.get_contents(conn, [info.hash])[info.hash].layout)
    assert len(layout.layout) > 2 and {seg[0] for seg in layout.layout} == {"c"}


def test_read_whole_files(make_pipeline, home, inputs):
    with make_pipeline() as p:
        got = p | ReadFromRepo("in@master", store_home=home)
        assert_that(got, equal_to(list(inputs.items())))


def test_glob_and_path_select_files(home, inputs):
    csvs = ["/b.csv", "/data/c.csv", "/data/deep/e.csv"]
    cases = {
        "all csv": ReadFromRepo("in@master", glob="/**/*.csv", store_home=home),
        "top level": ReadFromRepo("in@master", glob="/*.txt", store_home=home),
        "a folder": ReadFromRepo("in@master:/data", store_home=home),
        "glob in a folder": ReadFromRepo("in@master:/data", glob="*/*.csv", store_home=home),
        "one file": ReadFromRepo("in@master:/data/c.csv", store_home=home),
        "matched dirs": ReadFromRepo("in@master", glob="/da*", store_home=home),
        "nothing": ReadFromRepo("in@master", glob="/*.parquet", store_home=home),
        "final slash": ReadFromRepo("in@master", glob="/data/*/", store_home=home),
        "everything": ReadFromRepo("in@master", glob="/**/", store_home=home),
        "either": ReadFromRepo("in@master", glob="/*.{csv,txt}", store_home=home),
    }
    expected = {  # Pachyderm's globs: '/**/' needs a folder, a final '/' changes nothing
        "all csv": csvs[1:],
        "top level": ["/a.txt", "/big.txt"],
        "a folder": ["/data/c.csv", "/data/deep/d.txt", "/data/deep/e.csv"],
        "glob in a folder": ["/data/deep/e.csv"],
        "one file": ["/data/c.csv"],
        "matched dirs": ["/data/c.csv", "/data/deep/d.txt", "/data/deep/e.csv"],
        "nothing": [],
        "final slash": ["/data/c.csv", "/data/deep/d.txt", "/data/deep/e.csv"],
        "everything": ["/a.txt", "/b.csv", "/big.txt", *csvs[1:2], "/data/deep/d.txt", csvs[2]],
        "either": ["/a.txt", "/b.csv", "/big.txt"],
    }
    with Pipeline() as p:
        for name, read in cases.items():
            paths = p | name >> read | f"{name} paths" >> Map(lambda f: f[0])
            assert_that(paths, equal_to(expected[name]), label=f"check {name}")


def test_read_lines_and_with_filename(make_pipeline, home, inputs):
    with make_pipeline() as p:
        lines = p | ReadFromRepo("in@master", glob="/**.csv", as_lines=True, store_home=home)
        named = p | "Named" >> ReadFromRepo(
            "in@master:/data", as_lines=True, with_filename=True, store_home=home
        )
        all_lines = p | "All" >> ReadFromRepo("in@master", as_lines=True, store_home=home)
        assert_that(lines, equal_to(["x,1", "y,2", "z,3", "w,4", "v,5"]))
        assert_that(
            named,
            equal_to(
                [("/data/c.csv", "z,3"), ("/data/deep/e.csv", "w,4"), ("/data/deep/e.csv", "v,5")]
            ),
            label="CheckNamed",
        )
        expected = [line for data in inputs.values() for line in _lines_of(data)]
        assert_that(all_lines | Map(len), equal_to([len(x) for x in expected]), label="Lengths")
        assert_that(
            all_lines | beam.combiners.Count.Globally(), equal_to([len(expected)]), label="Count"
        )


def test_line_splits_cut_large_files_into_ranges_that_tile_them(home, inputs):
    source = ReadFromRepo("in@master", as_lines=True, store_home=home)
    with Pipeline() as p:
        _ = p | source
    expected = [line for path in sorted(inputs) for line in _lines_of(inputs[path])]
    for n in (1, 2, 7, 40):
        parts = _source_of(source).split(n)
        assert 1 <= len(parts) <= n
        got = [line for part in parts for line in part.read()]
        assert got == expected, n
    parts = _source_of(source).split(40)
    big = [(pc.start, pc.stop) for part in parts for pc in part.pieces if pc.path == "/big.txt"]
    assert len(big) > 10  # the multi-chunk file was cut into byte ranges that tile it
    assert big[0][0] == 0 and big[-1][1] is None
    assert all(stop == next_start for (_, stop), (next_start, _) in zip(big, big[1:]))


def test_whole_file_splits_share_out_files(home, inputs):
    read = ReadFromRepo("in@master", store_home=home)
    with Pipeline() as p:
        _ = p | read
    parts = _source_of(read).split(3)
    assert len(parts) == 3
    got = [record for part in parts for record in part.read()]
    assert got == sorted(inputs.items())
    assert _source_of(read).estimate_size() == sum(len(v) for v in inputs.values())


def _source_of(read: ReadFromRepo) -> _RepoSource:
    """Rebuild the source that ``read`` applied (it is resolved to ``read.commit_ref``)."""
    repo, commit = read.commit_ref.split("@")
    location = _StoreLocation.open_new(read._store[0], None, None)
    location[0].close()
    return _RepoSource(location[1], repo, commit, read.pattern, read.as_lines, read.with_filename)


def test_read_resolves_the_commit_once_when_applied(home, store, inputs):
    read = ReadFromRepo("in@master", glob="/*.txt", store_home=home)
    p = Pipeline()
    got = p | read
    assert_that(got, equal_to([("/a.txt", inputs["/a.txt"]), ("/big.txt", inputs["/big.txt"])]))
    first = store.inspect_commit("in@master").id
    assert read.commit_ref == f"in@{first}"
    # The branch moves after construction: the run still reads the resolved commit.
    store.put_file("in@master:/a.txt", b"changed")
    store.put_file("in@master:/new.txt", b"new")
    p.run().wait_until_finish()


def test_branch_moving_during_the_run_does_not_change_what_is_read(home, store, inputs):
    def move_branch(record):
        with Store.open(home) as s:
            s.put_file(f"in@master:{record[0]}", b"overwritten while reading")
            if record[0] == "/b.csv":  # the first file read
                s.delete_file("in@master:/data/deep/e.csv")
        return record

    options = PipelineOptions(direct_bundle_size=1)
    with Pipeline(options=options) as p:
        got = p | ReadFromRepo("in@master", glob="/**.csv", store_home=home) | Map(move_branch)
        assert_that(got, equal_to([(k, v) for k, v in inputs.items() if k.endswith(".csv")]))
    assert store.get_file("in@master:/data/c.csv") == b"overwritten while reading"
    assert len(store.list_commits("in")) == 5  # the input commit, 3 overwrites, 1 delete


def test_ancestry_and_commit_references(home, store, inputs):
    first = store.inspect_commit("in@master").id
    store.put_file("in@master:/a.txt", b"second")
    with Pipeline() as p:
        parent = p | ReadFromRepo("in@master^1:/a.txt", store_home=home)
        by_id = p | "ById" >> ReadFromRepo(f"in@{first}:/a.txt", store_home=home)
        head = p | "Head" >> ReadFromRepo("in@master:/a.txt", store_home=home)
        assert_that(parent, equal_to([("/a.txt", inputs["/a.txt"])]))
        assert_that(by_id, equal_to([("/a.txt", inputs["/a.txt"])]), label="CheckById")
        assert_that(head, equal_to([("/a.txt", b"second")]), label="CheckHead")


def test_read_errors_name_the_problem(home, store, inputs):
    with pytest.raises(InvalidReference):
        ReadFromRepo("bad name@master", store_home=home)
    with pytest.raises(ValueError, match="with_filename=True needs as_lines=True"):
        ReadFromRepo("in@master", with_filename=True, store_home=home)
    with pytest.raises(RepoNotFound, match="ReadFromRepo: cannot read 'nope@master'"):
        Pipeline() | ReadFromRepo("nope@master", store_home=home)
    with pytest.raises(StoreError, match="no-such-branch"):
        Pipeline() | ReadFromRepo("in@no-such-branch", store_home=home)
    with pytest.raises(CommitNotFound, match="ancestors"):
        Pipeline() | ReadFromRepo("in@master^5", store_home=home)
    store.start_commit("in@master")
    with pytest.raises(StoreError, match="still open; finish it first"):
        Pipeline() | ReadFromRepo("in@master", store_home=home)


def test_source_pickles_and_reads_without_the_database(home, inputs, tmp_path):
    read = ReadFromRepo("in@master", as_lines=True, store_home=home)
    with Pipeline() as p:
        _ = p | read
    parts = _source_of(read).split(2)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        copies = [pickle.loads(dumps(part)) for part in parts]
        assert sum(len(list(c.read())) for c in copies) == sum(
            len(_lines_of(v)) for v in inputs.values()
        )
    # Split sources read objects only: the metadata database is not needed any more.
    (tmp_path / "store" / "metadata.db").rename(tmp_path / "elsewhere.db")
    assert len(list(parts[0].read())) > 0


# -- writing ----------------------------------------------------------------------------------


def test_round_trip_with_provenance(make_pipeline, home, store, inputs):
    store.create_repo("out")
    read = ReadFromRepo("in@master", glob="/**.csv", store_home=home)
    with make_pipeline() as p:
        _ = (
            p
            | read
            | Map(lambda f: (f[0].replace(".csv", ".tsv"), f[1].replace(b",", b"\t")))
            | WriteToRepo("out@master:/tsv", message="to tsv", provenance=[read], store_home=home)
        )
    out = store.inspect_commit("out@master")
    assert out.finished and out.message == "to tsv"
    assert _contents(store, "out@master") == {
        "/tsv/b.tsv": b"x\t1\ny\t2",
        "/tsv/data/c.tsv": b"z\t3\n",
        "/tsv/data/deep/e.tsv": b"w\t4\r\nv\t5\r\n",
    }
    assert [c.id for c in store.provenance("out@master")] == [read.commit_ref.split("@")[1]]
    assert len(store.list_commits("out")) == 1
    assert store.fsck().ok


def test_text_mode_writes_shards(make_pipeline, home, store, inputs):
    store.create_repo("out")
    with make_pipeline() as p:
        lines = p | ReadFromRepo("in@master", glob="/**.csv", as_lines=True, store_home=home)
        _ = lines | "Three" >> WriteToRepo(
            "out@master:/three/part", as_text=True, num_shards=3, header="h", store_home=home
        )
        _ = lines | "Single" >> WriteToRepo(
            "out@single:/all", as_text=True, shard_name_template="", file_name_suffix=".txt",
            provenance="in@master", store_home=home,
        )  # fmt: skip
    files = _contents(store, "out@master")
    assert sorted(files) == [f"/three/part-0000{i}-of-00003" for i in range(3)]
    body = [line for data in files.values() for line in _lines_of(data)]
    assert body.count("h") == 3  # a header in every shard, also an empty one
    assert sorted(x for x in body if x != "h") == sorted(["x,1", "y,2", "z,3", "w,4", "v,5"])
    single = _contents(store, "out@single")
    assert list(single) == ["/all.txt"]
    assert sorted(_lines_of(single["/all.txt"])) == sorted(["x,1", "y,2", "z,3", "w,4", "v,5"])
    assert store.provenance("out@single")[0].id == store.inspect_commit("in@master").id


def test_text_mode_one_shard_per_bundle_and_empty_input(home, store):
    store.create_repo("out")
    with Pipeline() as p:
        _ = p | Create(["a", "b"]) | WriteToRepo("out@master:/x", as_text=True, store_home=home)
        _ = (
            p
            | "Empty" >> Create([])
            | "WriteEmpty"
            >> WriteToRepo(
                "out@empty:/e/part", as_text=True, file_name_suffix=".txt.gz", store_home=home
            )
        )
    assert _contents(store, "out@master") == {"/x-00000-of-00001": b"a\nb\n"}
    empty = _contents(store, "out@empty")
    assert list(empty) == ["/e/part-00000-of-00001.txt.gz"]
    assert gzip.decompress(empty["/e/part-00000-of-00001.txt.gz"]) == b""


def test_two_processes_make_the_same_commit(home, store, inputs):
    store.create_repo("out")
    for branch, options in (("one", {}), ("two", MULTI)):
        read = ReadFromRepo("in@master", store_home=home)
        with Pipeline(options=PipelineOptions(**options)) as p:
            files = p | read | Map(lambda f: (f[0], f[1][::-1]))
            _ = files | WriteToRepo(f"out@{branch}", provenance=[read], store_home=home)
            lines = p | "Lines" >> ReadFromRepo("in@master", as_lines=True, store_home=home)
            _ = lines | "WriteLines" >> WriteToRepo(
                f"out@{branch}-text:/lines", as_text=True, num_shards=1, store_home=home
            )
    one = store.list_files("out@one", recursive=True)
    two = store.list_files("out@two", recursive=True)
    assert [(f.path, f.hash) for f in one] == [(f.path, f.hash) for f in two]
    assert store.get_file("out@two:/big.txt") == inputs["/big.txt"][::-1]
    assert store.diff("out@two", "out@one") == []
    a = _contents(store, "out@one-text")["/lines-00000-of-00001"]
    b = _contents(store, "out@two-text")["/lines-00000-of-00001"]
    expected = sorted(line for data in inputs.values() for line in _lines_of(data))
    assert sorted(_lines_of(a)) == sorted(_lines_of(b)) == expected


def _boom(record):
    if record[0] == "/data/c.csv":
        raise RuntimeError("boom on purpose")
    return record


@pytest.mark.parametrize("options", [{}, MULTI], ids=["in_process", "two_processes"])
def test_failing_pipeline_makes_no_commit(options, home, store, inputs):
    store.create_repo("out")
    before = store.list_commits("out")
    with pytest.raises(Exception, match="boom on purpose"):
        with Pipeline(options=PipelineOptions(**options)) as p:
            _ = (
                p
                | ReadFromRepo("in@master", store_home=home)
                | Map(_boom)
                | WriteToRepo("out@master", store_home=home)
            )
    assert store.list_commits("out") == before == []
    assert store.list_branches("out") == []


def test_failure_after_the_files_were_stored_makes_no_commit(home, store, inputs):
    store.create_repo("out")

    def fail_later(kv):
        raise RuntimeError("a later stage failed")

    with pytest.raises(RuntimeError, match="a later stage failed"):
        with Pipeline() as p:
            files = (
                p | ReadFromRepo("in@master", store_home=home) | Map(lambda f: (f[0], f[1] + b"!"))
            )
            _ = files | WriteToRepo("out@master", store_home=home)
            _ = files | GroupByKey() | Map(fail_later)
    assert store.list_commits("out") == []
    # The contents were stored but nothing references them: gc removes them.
    assert store.gc(grace_seconds=0).objects_deleted >= 1
    assert store.fsck().ok


def test_known_content_is_not_stored_again(monkeypatch, home, store, inputs, tmp_path):
    monkeypatch.setattr(_WriteFilesDoFn, "BATCH_FILES", 2)  # several lookup batches per bundle
    store.create_repo("out")
    objects = tmp_path / "store" / "objects"
    before = sorted(p for p in objects.rglob("*") if p.is_file())
    with Pipeline() as p:
        _ = (
            p
            | ReadFromRepo("in@master", store_home=home)
            | WriteToRepo("out@copy", store_home=home)
        )
    assert sorted(p for p in objects.rglob("*") if p.is_file()) == before
    assert _contents(store, "out@copy") == inputs
    with Pipeline() as p:
        _ = (
            p
            | ReadFromRepo("in@master", store_home=home)
            | Map(lambda f: (f[0], f[1] + b"?"))
            | WriteToRepo("out@changed", store_home=home)
        )
    assert len([p for p in objects.rglob("*") if p.is_file()]) > len(before)
    assert _contents(store, "out@changed") == {k: v + b"?" for k, v in inputs.items()}
    assert store.fsck().ok


def test_open_commit_on_the_output_branch_fails_the_run(home, store, inputs):
    store.create_repo("out")
    blocking = store.start_commit("out@master")
    with pytest.raises(Conflict, match="already has an open commit"):
        with Pipeline() as p:
            _ = p | Create([("/x", b"x")]) | WriteToRepo("out@master", store_home=home)
    assert [c.id for c in store.list_commits("out")] == [blocking.id]


def test_write_errors_name_the_problem(home, store, inputs):
    store.create_repo("out")
    commit = store.inspect_commit("in@master").id
    with pytest.raises(ValueError, match="write to a branch"):
        WriteToRepo(f"in@{commit}", store_home=home)
    with pytest.raises(ValueError, match="write to a branch"):
        WriteToRepo("in@master^1", store_home=home)
    with pytest.raises(ValueError, match="num_shards applies to text mode only"):
        WriteToRepo("out@master", num_shards=2, store_home=home)
    with pytest.raises(ValueError, match="name the files' prefix"):
        WriteToRepo("out@master", as_text=True, store_home=home)
    with pytest.raises(TypeError, match="provenance holds 3"):
        WriteToRepo("out@master", provenance=[3], store_home=home)
    with pytest.raises(RepoNotFound, match="WriteToRepo: cannot write to 'missing@master'"):
        Pipeline() | Create([]) | WriteToRepo("missing@master", store_home=home)
    with pytest.raises(StoreError, match="provenance 'in@nope'"):
        Pipeline() | Create([]) | WriteToRepo("out@master", provenance="in@nope", store_home=home)
    unapplied = ReadFromRepo("in@master", store_home=home)
    with pytest.raises(ValueError, match="has not been applied"):
        Pipeline() | Create([]) | WriteToRepo("out@master", provenance=[unapplied], store_home=home)
    with pytest.raises(ValueError, match="give \\(path, bytes or str\\) pairs"):
        with Pipeline() as p:
            _ = p | Create([b"no path"]) | WriteToRepo("out@master", store_home=home)
    with pytest.raises(ValueError, match="the data is int"):
        with Pipeline() as p:
            _ = p | Create([("/x", 1)]) | WriteToRepo("out@master", store_home=home)
    with pytest.raises(ValueError, match="'..' is not allowed"):
        with Pipeline() as p:
            _ = p | Create([("../x", b"")]) | WriteToRepo("out@master", store_home=home)
    with pytest.raises(StoreError, match="path /x is given twice"):
        with Pipeline() as p:
            _ = p | Create([("/x", b"1"), ("x", "2")]) | WriteToRepo("out@master", store_home=home)
    assert store.list_commits("out") == []


def test_str_data_and_empty_input_make_a_commit(home, store):
    store.create_repo("out")
    with Pipeline() as p:
        _ = p | Create([("note.md", "héllo")]) | WriteToRepo("out@master:/docs", store_home=home)
        _ = (
            p
            | "Nothing" >> Create([])
            | "WriteNothing" >> WriteToRepo("out@empty", message="empty run", store_home=home)
        )
    assert _contents(store, "out@master") == {"/docs/note.md": "héllo".encode()}
    empty = store.inspect_commit("out@empty")
    assert empty.message == "empty run" and empty.file_count == 0


def test_writes_keep_the_files_of_the_branch_head(home, store):
    store.create_repo("out")
    store.put_files("out@master", [("/keep.txt", b"keep"), ("/replace.txt", b"old")])
    with Pipeline() as p:
        _ = p | Create([("/replace.txt", b"new")]) | WriteToRepo("out@master", store_home=home)
    assert _contents(store, "out@master") == {"/keep.txt": b"keep", "/replace.txt": b"new"}


def test_write_steps_and_finalizer_pickle(home, store):
    store.create_repo("out")
    location = _StoreLocation.open_new(home, None, None)
    location[0].close()
    loc = location[1]
    write = WriteToRepo("out@master:/t/p", as_text=True, store_home=home)
    fns = [_WriteFilesDoFn(loc, "/", "out@master"), _WriteTextBundlesDoFn(loc, write.text_sink)]
    for dumps in (pickle.dumps, cloudpickle.dumps):
        for fn in fns:
            copy = pickle.loads(dumps(fn))
            assert copy.store.location == loc and copy.store._store is None
        finalizer = pickle.loads(dumps(_RepoFinalizer(loc, "out@master", "m", (), None)))
        assert finalizer.location == loc
    # A DoFn used in this process pickles without its open store.
    fn = _WriteFilesDoFn(loc, "/", "out@master")
    fn.start_bundle()
    fn.process(("/a", b"a"))
    records = list(fn.finish_bundle())
    assert fn.store._store is not None
    assert pickle.loads(pickle.dumps(fn)).store._store is None
    fn.teardown()
    _RepoFinalizer(loc, "out@master", "by hand", (), None).commit(records)
    assert store.get_file("out@master:/a") == b"a"


def test_beam_module_path():
    assert beam.io.ReadFromRepo is ReadFromRepo
    assert beam.io.WriteToRepo is WriteToRepo
