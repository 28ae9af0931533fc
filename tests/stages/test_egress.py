"""Egress: the spec's two egress forms, mirroring a commit to a local folder and other fsspec
filesystems (full and incremental, deletions, atomic writes), and loading a commit into a SQL
table (SQLite and PostgreSQL, one suite) in one transaction."""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import fsspec
import pytest
import sqlalchemy as sa
from fsspec.implementations.memory import MemoryFileSystem

from headrace.stages import egress as egress_module
from headrace.stages.egress import EgressError, EgressReport, egress_commit
from headrace.stages.spec import SpecError, SqlEgress, hide_password, load_spec
from headrace.store.store import Store

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "store")
    s.create_repo("out")
    yield s
    s.close()


def snapshot(store: Store, files: dict[str, bytes], repo: str = "out") -> str:
    """Commit so that ``repo@master`` holds exactly ``files``; return ``repo@<id>``."""
    try:
        present = {f.path for f in store.walk_files(f"{repo}@master")}
    except Exception:
        present = set()
    with store.commit(f"{repo}@master") as c:
        for path in sorted(present - set(files)):
            c.delete_file(path)
        for path, data in files.items():
            c.put_file(path, data)
    assert c.info is not None
    return f"{repo}@{c.info.id}"


def local_tree(root: Path) -> dict[str, bytes]:
    return {
        "/" + p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
    }


def base(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "clean",
        "input": {"pfs": {"repo": "orders", "glob": "/*"}},
        "transform": {"python": "shop.clean:run"},
    }
    spec.update(overrides)
    return spec


def spec_error(data: Any) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(data)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# The spec's egress field


def test_spec_egress_url_is_still_a_string() -> None:
    spec = load_spec(base(egress="s3://bucket/out"))
    assert spec.egress == "s3://bucket/out"
    assert spec.to_dict()["egress"] == "s3://bucket/out"
    assert load_spec(spec.to_dict()) == spec


def test_spec_egress_sql_mapping() -> None:
    spec = load_spec(
        base(egress={"sql": "postgresql://etl:pw@db:5432/shop", "table": "public.orders"})
    )
    assert spec.egress == SqlEgress("postgresql://etl:pw@db:5432/shop", "public.orders", "csv")
    assert spec.to_dict()["egress"] == {
        "sql": "postgresql://etl:pw@db:5432/shop",
        "table": "public.orders",
    }
    assert spec.to_dict(include_defaults=True)["egress"]["format"] == "csv"
    assert load_spec(spec.to_dict()) == spec
    assert load_spec(spec.to_dict(include_defaults=True)) == spec
    # Egress does not decide outputs: the version ignores it.
    assert spec.version == load_spec(base()).version


def test_spec_egress_sql_yaml_jsonl() -> None:
    spec = load_spec(
        """
name: clean
input: {pfs: {repo: orders, glob: "/*"}}
transform: {python: "shop.clean:run"}
egress:
  sql: sqlite:////srv/out.db
  table: events
  format: jsonl
"""
    )
    assert spec.egress == SqlEgress("sqlite:////srv/out.db", "events", "jsonl")
    assert spec.to_dict()["egress"] == {
        "sql": "sqlite:////srv/out.db",
        "table": "events",
        "format": "jsonl",
    }


def test_sql_egress_hides_password_and_pickles() -> None:
    target = SqlEgress("postgresql://etl:s3cret@db/shop", "orders")
    assert "s3cret" not in repr(target)
    assert (
        repr(target)
        == "SqlEgress(url='postgresql://etl:***@db/shop', table='orders', format='csv')"
    )
    assert pickle.loads(pickle.dumps(target)) == target
    assert cloudpickle.loads(cloudpickle.dumps(target)) == target
    spec = load_spec(base(egress={"sql": target.url, "table": "orders"}))
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert hide_password("s3://key:secret@bucket/x") == "s3://key:***@bucket/x"
    assert hide_password("postgresql://etl@db/shop") == "postgresql://etl@db/shop"


@pytest.mark.parametrize(
    ("egress", "expected"),
    [
        ({"table": "t"}, "egress.sql: is required"),
        ({"sql": "sqlite:////x.db"}, "egress.table: is required"),
        (
            {"sql": "sqlite:////x.db", "tabel": "t"},
            "egress.tabel: unknown field 'tabel'; did you mean 'table'?",
        ),
        ({"sql": "mysql://u@h/db", "table": "t"}, "egress.sql: must be a SQLAlchemy URL of"),
        ({"sql": "sqlite://", "table": "t"}, "egress.sql: must be a SQLAlchemy URL of"),
        ({"sql": 5, "table": "t"}, "egress.sql: must be a string (quote it), got int 5"),
        ({"sql": "sqlite:////x.db", "table": "1st"}, "egress.table: must be a table name"),
        ({"sql": "sqlite:////x.db", "table": "a;drop"}, "egress.table: must be a table name"),
        ({"sql": "sqlite:////x.db", "table": "a.b.c"}, "egress.table: must be a table name"),
        (
            {"sql": "sqlite:////x.db", "table": "t", "format": "xml"},
            "egress.format: must be 'csv' or 'jsonl', got 'xml'",
        ),
        (5, "egress: must be an fsspec URL such as 's3://bucket/dir', or a mapping"),
        (["s3://a"], "egress: must be an fsspec URL such as"),
        ("bucket/out", "egress: must be an fsspec URL with a scheme"),
        (
            "sqlite:////srv/out.db",
            "egress: must be an fsspec URL; 'sqlite:////srv/out.db' is a database",
        ),
    ],
)
def test_spec_egress_errors(egress: object, expected: str) -> None:
    assert spec_error(base(egress=egress)).startswith(expected)


def test_spec_egress_errors_hide_passwords() -> None:
    msg = spec_error(base(egress={"sql": "mysql://etl:hunter2@db/x", "table": "t"}))
    assert "hunter2" not in msg and "etl:***@db" in msg
    msg = spec_error(base(egress="postgresql://etl:hunter2@db/x"))
    assert "hunter2" not in msg
    assert "{sql: 'postgresql://etl:***@db/x', table: <name>}" in msg


# ---------------------------------------------------------------------------------------------
# Mirror to a local folder

BIG = os.urandom(3 << 20)  # several store chunks


def test_full_mirror_writes_all_and_removes_the_rest(store: Store, tmp_path: Path) -> None:
    commit = snapshot(store, {"/a.csv": b"x\n1\n", "/dir/b.txt": b"b", "/dir/sub/c.bin": BIG})
    root = tmp_path / "mirror"
    (root / "dir" / "gone").mkdir(parents=True)
    (root / "stale.txt").write_bytes(b"old")
    (root / "dir" / "old.txt").write_bytes(b"old")
    (root / "dir" / "gone" / "x").write_bytes(b"old")
    (root / "dir" / "b.txt").write_bytes(b"previous version")

    report = egress_commit(store, commit, root.as_uri())

    assert local_tree(root) == {"/a.csv": b"x\n1\n", "/dir/b.txt": b"b", "/dir/sub/c.bin": BIG}
    assert not (root / "dir" / "gone").exists()  # emptied folders go too
    assert (report.files_written, report.files_deleted, report.rows) == (3, 3, 0)
    assert report.target == root.as_uri() and report.seconds >= 0
    # Running it again changes nothing.
    again = egress_commit(store, commit, str(root))
    assert (again.files_written, again.files_deleted) == (3, 0)
    assert local_tree(root) == {"/a.csv": b"x\n1\n", "/dir/b.txt": b"b", "/dir/sub/c.bin": BIG}


def test_incremental_mirror_writes_only_the_difference(store: Store, tmp_path: Path) -> None:
    first = snapshot(store, {"/a.csv": b"1", "/dir/b.txt": b"b", "/dir/sub/c.bin": BIG})
    root = tmp_path / "mirror"
    egress_commit(store, first, str(root))
    (root / "foreign.txt").write_bytes(b"not ours")
    untouched = (root / "dir" / "sub" / "c.bin").stat().st_ino
    rewritten = (root / "a.csv").stat().st_ino
    second = snapshot(store, {"/a.csv": b"2", "/new/n.txt": b"n", "/dir/sub/c.bin": BIG})

    report = egress_commit(store, second, str(root), previous=first)

    assert (report.files_written, report.files_deleted) == (2, 1)
    assert local_tree(root) == {
        "/a.csv": b"2",
        "/new/n.txt": b"n",
        "/dir/sub/c.bin": BIG,
        "/foreign.txt": b"not ours",  # an incremental mirror touches only the difference
    }
    assert (root / "dir" / "sub" / "c.bin").stat().st_ino == untouched
    assert (root / "a.csv").stat().st_ino != rewritten  # replaced by a rename, not rewritten

    # ``previous`` may be a bare commit id of the same repo.
    third = snapshot(store, {"/a.csv": b"3"})
    report = egress_commit(store, third, str(root), previous=second.split("@")[1])
    assert (report.files_written, report.files_deleted) == (1, 2)
    assert local_tree(root) == {"/a.csv": b"3", "/foreign.txt": b"not ours"}
    assert sorted(p.name for p in root.iterdir()) == ["a.csv", "foreign.txt"]


def test_file_turning_into_a_directory_and_back(store: Store, tmp_path: Path) -> None:
    first = snapshot(store, {"/x": b"file"})
    second = snapshot(store, {"/x/y": b"nested"})
    root = tmp_path / "m"
    egress_commit(store, first, str(root))
    assert egress_commit(store, second, str(root), previous=first).files_deleted == 1
    assert local_tree(root) == {"/x/y": b"nested"}
    egress_commit(store, first, str(root), previous=second)
    assert local_tree(root) == {"/x": b"file"}
    # A full mirror copes with the same swap.
    egress_commit(store, second, str(root))
    assert local_tree(root) == {"/x/y": b"nested"}


def test_writes_are_atomic_renames(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "m"
    first = snapshot(store, {"/d/a.csv": b"old contents"})
    egress_commit(store, first, str(root))
    second = snapshot(store, {"/d/a.csv": b"new contents"})
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        renames.append((src, dst))
        assert Path(dst).read_bytes() == b"old contents"  # readers still see the old file
        assert Path(src).read_bytes() == b"new contents"  # the new one is complete
        real_replace(src, dst)

    monkeypatch.setattr(egress_module.os, "replace", spy)
    egress_commit(store, second, str(root), previous=first)
    [(src, dst)] = renames
    assert dst == str(root / "d" / "a.csv")
    assert Path(src).parent == root / "d" and Path(src).name.startswith(".a.csv.headrace-")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "m"
    first = snapshot(store, {"/a.csv": b"old", "/b.csv": b"old b"})
    egress_commit(store, first, str(root))
    second = snapshot(store, {"/a.csv": b"new", "/b.csv": b"new b"})

    def broken(ref: str) -> Iterator[bytes]:
        yield b"half of "
        raise OSError("disk on fire")

    monkeypatch.setattr(store, "open_file", broken)
    with pytest.raises(EgressError) as info:
        egress_commit(store, second, str(root), previous=first)
    assert info.value.path == "/a.csv"
    assert str(info.value) == (
        f"egress of {second} to {root} failed at /a.csv: OSError: disk on fire"
    )
    assert local_tree(root) == {"/a.csv": b"old", "/b.csv": b"old b"}


def test_errors_name_target_and_file(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "m"
    first = snapshot(store, {"/a.csv": b"1"})
    egress_commit(store, first, str(root))
    (root / "dir").write_bytes(b"a file where a folder must go")
    second = snapshot(store, {"/a.csv": b"1", "/dir/b.csv": b"2"})
    with pytest.raises(EgressError) as info:
        egress_commit(store, second, str(root), previous=first)
    err = info.value
    assert (err.commit, err.target, err.path) == (second, str(root), "/dir/b.csv")
    assert str(err).startswith(f"egress of {second} to {root} failed at /dir/b.csv: ")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.path == err.path
    assert str(cloudpickle.loads(cloudpickle.dumps(err))) == str(err)


def test_open_and_unknown_commits_are_refused(store: Store, tmp_path: Path) -> None:
    snapshot(store, {"/a": b"1"})
    info = store.start_commit("out@master")
    with pytest.raises(EgressError, match="the commit is still open; egress it after"):
        egress_commit(store, f"out@{info.id}", str(tmp_path / "m"))
    with pytest.raises(EgressError, match=r"^egress of nope@master to .* failed: "):
        egress_commit(store, "nope@master", str(tmp_path / "m"))
    assert not (tmp_path / "m").exists()


def test_branch_reference_egresses_its_head(store: Store, tmp_path: Path) -> None:
    snapshot(store, {"/a": b"1"})
    report = egress_commit(store, "out@master", str(tmp_path / "m"))
    assert report.files_written == 1 and local_tree(tmp_path / "m") == {"/a": b"1"}


# ---------------------------------------------------------------------------------------------
# Mirror to other fsspec filesystems


@pytest.fixture
def memory_root() -> Iterator[str]:
    root = f"/egress-test-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def memory_tree(root: str) -> dict[str, bytes]:
    fs = fsspec.filesystem("memory")
    return {p[len(root) :]: fs.cat_file(p) for p in fs.find(root)}


def test_memory_mirror_full_and_incremental(store: Store, memory_root: str) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memory_root}/stale.txt", b"old")
    first = snapshot(store, {"/a.csv": b"1", "/d/b.csv": b"2", "/d/e/big": BIG})
    report = egress_commit(store, first, f"memory://{memory_root}")
    assert (report.files_written, report.files_deleted) == (3, 1)
    assert memory_tree(memory_root) == {"/a.csv": b"1", "/d/b.csv": b"2", "/d/e/big": BIG}
    second = snapshot(store, {"/a.csv": b"1!", "/d/e/big": BIG, "/z": b"z"})
    report = egress_commit(store, second, f"memory://{memory_root}", previous=first)
    assert (report.files_written, report.files_deleted) == (2, 1)
    assert memory_tree(memory_root) == {"/a.csv": b"1!", "/d/e/big": BIG, "/z": b"z"}


def test_memory_upload_failing_midway_publishes_nothing(
    store: Store, memory_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = snapshot(store, {"/a.csv": b"old"})
    egress_commit(store, first, f"memory://{memory_root}")
    second = snapshot(store, {"/a.csv": b"new", "/b.csv": b"b"})

    def broken(ref: str) -> Iterator[bytes]:
        yield b"half of "
        raise OSError("disk on fire")

    monkeypatch.setattr(store, "open_file", broken)
    with pytest.raises(EgressError, match="failed at /a.csv: OSError: disk on fire"):
        egress_commit(store, second, f"memory://{memory_root}", previous=first)
    assert memory_tree(memory_root) == {"/a.csv": b"old"}


def test_large_uploads_go_through_a_local_file(
    store: Store, memory_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(egress_module, "_IN_MEMORY_BYTES", 1 << 20)
    spilled: list[str] = []
    real_mkstemp = egress_module.tempfile.mkstemp

    def spy(**kwargs: Any) -> tuple[int, str]:
        handle, name = real_mkstemp(**kwargs)
        spilled.append(name)
        return handle, name

    monkeypatch.setattr(egress_module.tempfile, "mkstemp", spy)
    commit = snapshot(store, {"/big": BIG, "/small": b"s"})
    egress_commit(store, commit, f"memory://{memory_root}")
    assert memory_tree(memory_root) == {"/big": BIG, "/small": b"s"}
    assert len(spilled) == 1 and not os.path.exists(spilled[0])  # only the big one, removed


class RenamingMemoryFS(MemoryFileSystem):
    """A memory filesystem under another protocol: one without atomic uploads or a local
    rename, so egress writes a temporary file and moves it."""

    protocol = "hrtestfs"
    moves: list[tuple[str, str]] = []

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return super()._strip_protocol(path.replace("hrtestfs://", "memory://", 1))

    def mv(self, path1: str, path2: str, **kwargs: Any) -> None:
        type(self).moves.append((path1, path2))
        super().mv(path1, path2, **kwargs)


def test_other_filesystems_write_a_temporary_then_move(store: Store, memory_root: str) -> None:
    fsspec.register_implementation("hrtestfs", RenamingMemoryFS, clobber=True)
    RenamingMemoryFS.moves.clear()
    commit = snapshot(store, {"/d/a.csv": b"1"})
    egress_commit(store, commit, f"hrtestfs://{memory_root}")
    assert memory_tree(memory_root) == {"/d/a.csv": b"1"}  # shares the memory store
    [(src, dst)] = RenamingMemoryFS.moves
    assert dst == f"{memory_root}/d/a.csv"
    assert src.startswith(f"{memory_root}/d/.a.csv.headrace-")


# ---------------------------------------------------------------------------------------------
# SQL tables: one suite over SQLite and PostgreSQL


class Db:
    """A database URL and a fresh table name, dropped after the test."""

    def __init__(self, url: str, table: str) -> None:
        self.url = url
        self.table = table
        self.engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))

    def target(self, fmt: str = "csv", table: str | None = None) -> SqlEgress:
        return SqlEgress(self.url, table or self.table, fmt)  # type: ignore[arg-type]

    def exec(self, sql: str) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(sql)

    def rows(self, order: str = "1") -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.exec_driver_sql(f"SELECT * FROM {self.table} ORDER BY {order}")
            ]

    def columns(self) -> list[str]:
        return [c["name"] for c in sa.inspect(self.engine).get_columns(self.table)]

    def exists(self) -> bool:
        return sa.inspect(self.engine).has_table(self.table)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    table = f"egress_{uuid.uuid4().hex[:12]}"
    url = f"sqlite:///{tmp_path / 'out.db'}" if request.param == "sqlite" else PG_URL
    d = Db(url, table)
    yield d
    d.exec(f'DROP TABLE IF EXISTS "{table}"')
    d.engine.dispose()


def test_sql_load_creates_a_text_table(store: Store, db: Db) -> None:
    commit = snapshot(
        store,
        {
            "/a.csv": b"id,name\n1,ann\n2,bob\n",
            "/sub/b.csv": b"name,id\r\nzoe,3\r\n\r\n",  # other column order, CRLF, blank line
            "/sub/C.CSV": b"id,name\n4,max\n",
            "/readme.txt": b"not loaded",
            "/c.CSV.bak": b"not loaded",
        },
    )
    report = egress_commit(store, commit, db.target())
    assert db.columns() == ["id", "name"]
    assert db.rows() == [("1", "ann"), ("2", "bob"), ("3", "zoe"), ("4", "max")]
    assert (report.files_written, report.files_deleted, report.rows) == (3, 0, 4)
    assert report.target == f"table {db.table} in {db.url}"


def test_sql_load_replaces_contents(store: Store, db: Db) -> None:
    egress_commit(store, snapshot(store, {"/a.csv": b"id\n1\n2\n"}), db.target())
    report = egress_commit(store, snapshot(store, {"/b.csv": b"id\n7\n"}), db.target())
    assert db.rows() == [("7",)] and report.rows == 1
    # An empty commit (no CSV files) empties the table.
    report = egress_commit(store, snapshot(store, {"/notes.md": b"-"}), db.target())
    assert db.rows() == [] and report.rows == 0 and db.exists()


def test_sql_nothing_to_load_and_no_table(store: Store, db: Db) -> None:
    report = egress_commit(store, snapshot(store, {}), db.target())
    assert report.rows == 0 and report.files_written == 0
    assert not db.exists()  # no header to make it from
    # An empty file names no columns; a header-only file does.
    egress_commit(store, snapshot(store, {"/a.csv": b"", "/b.csv": b"k,v\n"}), db.target())
    assert db.columns() == ["k", "v"] and db.rows() == []
    # With the table there, an empty file still adds nothing and is no error.
    commit = snapshot(store, {"/a.csv": b"", "/b.csv": b"k,v\n1,2\n", "/c.jsonl": b"{}"})
    assert egress_commit(store, commit, db.target()).rows == 1
    assert db.rows() == [("1", "2")]


def test_sql_many_rows_in_batches(store: Store, db: Db) -> None:
    n = 2 * egress_module._BATCH_ROWS + 17
    body = "n,sq\n" + "".join(f"{i},{i * i}\n" for i in range(n))
    report = egress_commit(store, snapshot(store, {"/a.csv": body.encode()}), db.target())
    assert report.rows == n
    rows = db.rows(order="CAST(n AS INTEGER)")
    assert len(rows) == n and rows[-1] == (str(n - 1), str((n - 1) ** 2))


def test_sql_awkward_column_names_and_values(store: Store, db: Db) -> None:
    data = 'Unit Price,a%b,"q""x",é\n"1,5",%s,"line\nbreak",ü\n'.encode()
    egress_commit(store, snapshot(store, {"/a.csv": b"\xef\xbb\xbf" + data}), db.target())
    assert db.columns() == ["Unit Price", "a%b", 'q"x', "é"]  # the BOM is not in a name
    assert db.rows() == [("1,5", "%s", "line\nbreak", "ü")]


def test_sql_existing_typed_table_converts(store: Store, db: Db) -> None:
    db.exec(f"CREATE TABLE {db.table} (id INTEGER, price NUMERIC, day DATE, note TEXT)")
    commit = snapshot(store, {"/a.csv": b"day,id,price,note\n2024-01-02,1,2.5,x\n,2,,\n"})
    egress_commit(store, commit, db.target())
    rows = db.rows()
    assert [r[0] for r in rows] == [1, 2]  # integers now
    assert rows[1][1:] == (None, None, "")  # empty is NULL outside text columns
    assert str(rows[0][2]) == "2024-01-02" and float(rows[0][1]) == 2.5


def test_sql_existing_table_with_other_columns_fails(store: Store, db: Db) -> None:
    egress_commit(store, snapshot(store, {"/a.csv": b"id,name\n1,ann\n"}), db.target())
    commit = snapshot(store, {"/a.csv": b"id,label\n2,x\n"})
    with pytest.raises(EgressError) as info:
        egress_commit(store, commit, db.target())
    msg = str(info.value)
    assert info.value.path == "/a.csv"
    assert f"table {db.table} ['id', 'name']" in msg and "['id', 'label']" in msg
    assert db.rows() == [("1", "ann")]


def test_sql_bad_file_leaves_previous_contents(store: Store, db: Db) -> None:
    egress_commit(store, snapshot(store, {"/a.csv": b"id,name\n1,ann\n"}), db.target())
    big = b"id,name\n" + b"".join(b"%d,n\n" % i for i in range(5000))
    commit = snapshot(store, {"/a.csv": big, "/b.csv": b"id,name\n1,ann\n2\n"})
    with pytest.raises(EgressError) as info:
        egress_commit(store, commit, db.target())
    assert info.value.path == "/b.csv"
    assert "line 3 has 1 values but the header has 2 columns" in str(info.value)
    assert db.rows() == [("1", "ann")]  # the 5000 rows of /a.csv were rolled back too


def test_sql_database_error_names_the_file_and_rolls_back(store: Store, db: Db) -> None:
    db.exec(f"CREATE TABLE {db.table} (id INTEGER NOT NULL, name TEXT)")
    egress_commit(store, snapshot(store, {"/a.csv": b"id,name\n1,ann\n"}), db.target())
    rows = b"id,name\n" + b"".join(b"%d,x\n" % i for i in range(3000)) + b",bad\n"
    commit = snapshot(store, {"/a.csv": b"id,name\n5,ok\n", "/b.csv": rows})
    with pytest.raises(EgressError) as info:
        egress_commit(store, commit, db.target())
    assert info.value.path == "/b.csv"
    assert "IntegrityError" in str(info.value) or "NotNull" in str(info.value)
    assert len(str(info.value)) < 600  # the driver's message, not the batch's parameters
    assert db.rows() == [(1, "ann")]


def test_sql_new_table_is_rolled_back_with_the_load(store: Store, db: Db) -> None:
    commit = snapshot(store, {"/a.csv": b"id\n1\n", "/b.csv": b"id\n\xff\xfe\n"})
    with pytest.raises(EgressError, match=r"failed at /b\.csv: not UTF-8 text \(invalid"):
        egress_commit(store, commit, db.target())
    assert not db.exists()  # the CREATE TABLE was part of the transaction


def test_sql_header_problems(store: Store, db: Db) -> None:
    for body, problem in [
        (b"id,,x\n1,2,3\n", "['id', '', 'x'] has an empty column name"),
        (b"id,x,id\n1,2,3\n", "names the columns ['id'] more than once"),
    ]:
        with pytest.raises(EgressError) as info:
            egress_commit(store, snapshot(store, {"/h.csv": body}), db.target())
        assert str(info.value).endswith(f"failed at /h.csv: the header {problem}")


def test_sql_jsonl(store: Store, db: Db) -> None:
    commit = snapshot(
        store,
        {
            "/a.jsonl": b'{"id": "1", "n": 2, "ok": true, "tags": ["x"]}\n\n{"id": "2"}\n',
            "/b.ndjson": b'{"n": 1.5, "id": "3", "ok": null}\n',
            "/c.csv": b"ignored\n",
        },
    )
    report = egress_commit(store, commit, db.target("jsonl"))
    assert db.columns() == ["id", "n", "ok", "tags"]
    assert db.rows() == [
        ("1", "2", "true", '["x"]'),
        ("2", None, None, None),
        ("3", "1.5", None, None),
    ]
    assert (report.files_written, report.rows) == (2, 3)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"id": "1", "extra": 1}\n', "the keys ['extra'] are not columns of table"),
        (b'{"id": "1"}\n{"id": \n', "line 2 is not JSON"),
        (b'["id"]\n', "line 1 is a JSON list; each line must be an object"),
    ],
)
def test_sql_jsonl_errors(store: Store, db: Db, body: bytes, problem: str) -> None:
    egress_commit(store, snapshot(store, {"/a.jsonl": b'{"id": "0"}\n'}), db.target("jsonl"))
    with pytest.raises(EgressError) as info:
        egress_commit(store, snapshot(store, {"/b.jsonl": body}), db.target("jsonl"))
    assert info.value.path == "/b.jsonl" and problem in str(info.value)
    assert db.rows() == [("0",)]


def test_sql_schema_qualified_table(store: Store, db: Db) -> None:
    schema = "public" if db.url.startswith("postgresql") else "main"
    commit = snapshot(store, {"/a.csv": b"id\n1\n"})
    egress_commit(store, commit, db.target(table=f"{schema}.{db.table}"))
    assert db.rows() == [("1",)]


def test_sql_egress_from_a_spec(store: Store, db: Db) -> None:
    spec = load_spec(base(egress={"sql": db.url, "table": db.table}))
    assert isinstance(spec.egress, SqlEgress)
    egress_commit(store, snapshot(store, {"/a.csv": b"id\n1\n"}), spec.egress)
    assert db.rows() == [("1",)]


def test_sql_report_hides_the_password(store: Store) -> None:
    # Trust authentication ignores the password, so it can be anything here.
    table = f"egress_{uuid.uuid4().hex[:12]}"
    target = SqlEgress("postgresql://postgres:hunter2@127.0.0.1:5432/test", table)
    try:
        report = egress_commit(store, snapshot(store, {"/a.csv": b"id\n1\n"}), target)
        assert isinstance(report, EgressReport)
        assert report.target == f"table {table} in postgresql://postgres:***@127.0.0.1:5432/test"
    finally:
        cleanup = Db(PG_URL, table)
        cleanup.exec(f'DROP TABLE IF EXISTS "{table}"')
        cleanup.engine.dispose()


def test_sql_unreachable_database_names_the_target(store: Store, tmp_path: Path) -> None:
    target = SqlEgress("postgresql://postgres:hunter2@127.0.0.1:1/nowhere", "t")
    with pytest.raises(EgressError) as info:
        egress_commit(store, snapshot(store, {"/a.csv": b"id\n1\n"}), target)
    msg = str(info.value)
    assert "to table t in postgresql://postgres:***@127.0.0.1:1/nowhere failed" in msg
    assert "hunter2" not in msg
