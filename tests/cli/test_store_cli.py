"""The store commands of ``headrace`` (repo, branch, commit, file, merge, fsck, gc) through
typer's CliRunner, on a store in ``tmp_path`` (SQLite), and once on PostgreSQL."""

from __future__ import annotations

import io
import json
import random
import re
import subprocess
import sys
import uuid
from pathlib import Path

import fsspec
import pytest
from rich.console import Console
from typer.testing import CliRunner

from headrace.cli import file_commands as store_commands
from headrace.cli.main import app
from headrace.store.store import Store

runner = CliRunner()

COMMIT_KEYS = {
    "id", "repo", "branch", "parent", "state", "origin", "message", "started_at",
    "finished_at", "file_count", "size_bytes",
}  # fmt: skip
FILE_KEYS = {"path", "type", "size_bytes", "hash"}


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch):
    for name in ("HEADRACE_HOME", "HEADRACE_DB", "HEADRACE_OBJECTS"):
        monkeypatch.delenv(name, raising=False)


class Cli:
    """Runs ``headrace`` with the store options of one test."""

    def __init__(self, *options: str) -> None:
        self.options = list(options)

    def __call__(self, *args: str, input: bytes | str | None = None, code: int | None = 0):
        result = runner.invoke(app, [*args, *self.options], input=input)
        if code is not None:
            assert result.exit_code == code, (
                f"exit {result.exit_code} for {args}\nstdout: {result.stdout}\n"
                f"stderr: {result.stderr}\n{result.exception!r}"
            )
        return result

    def json(self, *args: str, code: int = 0):
        return json.loads(self(*args, "--json", code=code).stdout)


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def cli(home) -> Cli:
    return Cli("--home", str(home))


@pytest.fixture
def local_dir(tmp_path) -> Path:
    root = tmp_path / "local"
    (root / "2024" / "q1").mkdir(parents=True)
    (root / "2024" / "q1" / "jan.csv").write_bytes(b"id,amount\n1,10\n")
    (root / "2024" / "q1" / "feb.csv").write_bytes(b"id,amount\n2,20\n")
    (root / "readme.txt").write_bytes(b"sales data\n")
    return root


def test_full_scenario(cli, home, local_dir, tmp_path):
    # repo and a folder put
    assert cli("repo", "create", "sales", "-d", "monthly sales").stdout == "Created repo sales\n"
    out = cli("file", "put", "sales@master:/data/", str(local_dir), "-m", "first").stdout
    assert "Wrote 3 file(s), 41 B to sales@master in commit" in out
    first = cli.json("commit", "inspect", "sales@master")
    assert first["message"] == "first" and first["file_count"] == 3 and first["size_bytes"] == 41

    # listings
    listing = cli("file", "list", "sales@master:/data").stdout
    assert re.search(r"/data/2024/\s+dir\s+30 B", listing)
    assert re.search(r"/data/readme\.txt\s+file\s+11 B", listing)
    paths = [f["path"] for f in cli.json("file", "list", "sales@master", "--recursive")]
    assert paths == ["/data/2024/q1/feb.csv", "/data/2024/q1/jan.csv", "/data/readme.txt"]

    # get: a file to stdout, a folder to a local folder, a folder without -o is refused
    got = cli("file", "get", "sales@master:/data/2024/q1/jan.csv")
    assert got.stdout_bytes == b"id,amount\n1,10\n"
    out_dir = tmp_path / "out"
    assert (
        "Wrote 2 file(s)"
        in cli("file", "get", "sales@master:/data/2024", "-o", str(out_dir)).stdout
    )
    assert (out_dir / "q1" / "feb.csv").read_bytes() == b"id,amount\n2,20\n"
    refused = cli("file", "get", "sales@master:/data", code=2)
    assert "Error: sales@master:/data is a folder; write it to a local folder with -o DIR" in (
        refused.stderr
    )

    # a second commit and its diff
    (tmp_path / "mar.csv").write_bytes(b"id,amount\n3,30\n")
    cli("file", "put", "sales@master:/data/2024/q1/", str(tmp_path / "mar.csv"))
    cli("file", "put", "sales@master:/data/readme.txt", "-", input=b"updated\n")
    diff_text = cli("file", "diff", "sales@master", "sales@master^2").stdout
    assert re.search(r"\+\s+/data/2024/q1/mar\.csv\s+added", diff_text)
    assert re.search(r"~\s+/data/readme\.txt\s+modified\s+11 B\s+8 B", diff_text)
    assert "1 added, 0 deleted, 1 modified" in diff_text
    diff = cli.json("file", "diff", "sales@master")
    assert [(d["path"], d["kind"]) for d in diff] == [("/data/readme.txt", "modified")]
    assert diff[0]["old"]["size_bytes"] == 11 and diff[0]["new"]["size_bytes"] == 8

    # branches and merges: fast-forward, then a conflict
    assert (
        "Created branch sales@dev at "
        in cli("branch", "create", "sales@dev", "--head", "master").stdout
    )
    cli("file", "put", "sales@dev:/data/dev.txt", "-", input=b"dev only")
    assert cli("merge", "sales@dev", "sales@master").stdout.startswith("fast-forward: sales@master")
    assert cli("merge", "sales@dev", "sales@master").stdout.startswith("up-to-date:")
    cli("file", "put", "sales@dev:/data/readme.txt", "-", input=b"dev says\n")
    cli("file", "put", "sales@master:/data/readme.txt", "-", input=b"master says\n")
    cli("file", "put", "sales@dev:/data/extra.txt", "-", input=b"extra\n")
    head = cli.json("commit", "inspect", "sales@master")["id"]
    conflict = cli("merge", "sales@dev", "sales@master", code=1)
    assert "Error: merging sales@dev into sales@master: 1 path(s) changed on both sides" in (
        conflict.stderr
    )
    assert "conflicting paths:\n    /data/readme.txt\n" in conflict.stderr
    assert cli.json("merge", "sales@dev", "sales@master", code=1) == {
        "kind": "conflict", "commit": None, "conflicts": ["/data/readme.txt"],
    }  # fmt: skip
    assert cli.json("commit", "inspect", "sales@master")["id"] == head  # nothing was written

    # resolve on dev, merge: a merge commit whose provenance is dev's head
    cli("file", "put", "sales@dev:/data/readme.txt", "-", input=b"master says\n")
    dev_head = cli.json("commit", "inspect", "sales@dev")["id"]
    merged = cli("merge", "sales@dev", "sales@master", "-m", "bring dev in").stdout
    assert merged.startswith("merge: merged sales@dev into sales@master as commit ")
    assert cli("file", "get", "sales@master:/data/extra.txt").stdout == "extra\n"
    merge_commit = cli.json("commit", "inspect", "sales@master")
    assert merge_commit["message"] == "bring dev in"
    provenance = cli("commit", "provenance", "sales@master", "--direct").stdout
    assert dev_head in provenance and "dev" in provenance
    assert [c["id"] for c in cli.json("commit", "provenance", "sales@master", "--direct")] == [
        dev_head
    ]
    assert merge_commit["id"] in cli("commit", "subvenance", f"sales@{dev_head}").stdout

    # fsck, then a corrupted object makes it fail and name the object
    assert "no problems" in cli("fsck").stdout
    assert cli.json("fsck")["ok"] is True
    with Store.open(home) as store:
        key = next(iter(store.objects.keys()))
        location = Path(store.objects.location(key))
    raw = bytearray(location.read_bytes())
    raw[-1] ^= 0xFF
    location.write_bytes(bytes(raw))
    bad = cli("fsck", code=1)
    assert key in bad.stdout and "corrupt (hash mismatch)" in bad.stdout
    assert "Error: fsck found 1 problem(s)" in bad.stderr
    report = cli.json("fsck", code=1)
    assert report["ok"] is False and len(report["problems"]) == 1
    assert "no problems" in cli("fsck", "--no-verify").stdout  # existence only
    location.write_bytes(bytes(raw[:-1]) + bytes([raw[-1] ^ 0xFF]))

    # gc: nothing to free, then a deleted branch's files are freed
    assert cli.json("gc", "--grace", "0")["objects_deleted"] == 0
    cli("repo", "create", "scratch")
    cli("file", "put", "scratch@master:/tmp.bin", "-", input=b"\x00throwaway" * 100)
    cli("repo", "delete", "scratch")
    dry = cli("gc", "--dry-run", "--grace", "0").stdout
    assert dry.startswith("Would delete 1 object(s)")
    report = cli.json("gc", "--grace", "0")
    assert report["objects_deleted"] == 1 and report["dry_run"] is False
    assert "no problems" in cli("fsck").stdout


def test_json_outputs_parse_with_stable_keys(cli, local_dir):
    repo = cli.json("repo", "create", "r", "--description", "d")
    assert repo == {
        "name": "r",
        "description": "d",
        "created_at": repo["created_at"],
        "branches": [],
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", repo["created_at"])
    put = cli.json("file", "put", "r@master:/", str(local_dir))
    assert set(put) == {"commit", "file_count", "size_bytes"}
    assert set(put["commit"]) == COMMIT_KEYS and put["file_count"] == 3
    assert put["size_bytes"] == 41 and put["commit"]["state"] == "FINISHED"
    assert [r["name"] for r in cli.json("repo", "list")] == ["r"]
    assert cli.json("repo", "inspect", "r")["branches"] == ["master"]
    assert cli.json("branch", "list", "r") == [
        {"repo": "r", "name": "master", "head": put["commit"]["id"]}
    ]
    branch = cli.json("branch", "create", "r@dev")
    assert branch == {"repo": "r", "name": "dev", "head": None}
    commits = cli.json("commit", "list", "r")
    assert [set(c) for c in commits] == [COMMIT_KEYS]
    assert cli.json("commit", "list", "r@dev") == []
    for entry in cli.json("file", "list", "r@master"):
        assert set(entry) == FILE_KEYS
    glob = cli.json("file", "glob", "r@master:/**/*.csv")
    assert [f["path"] for f in glob] == ["/2024/q1/feb.csv", "/2024/q1/jan.csv"]
    assert [f["path"] for f in cli.json("file", "glob", "r@master:/!(*.*)/")] == ["/2024"]
    assert re.search(
        r"/2024/q1/jan\.csv\s+file\s+15 B", cli("file", "glob", "r@master:**/j?n.csv").stdout
    )
    info = cli.json("file", "inspect", "r@master:/readme.txt")
    assert info["type"] == "file" and info["size_bytes"] == 11 and len(info["hash"]) == 64
    assert cli.json("file", "inspect", "r@master:/2024")["type"] == "dir"
    assert cli.json("commit", "provenance", "r@master") == []
    assert cli.json("commit", "wait", "r@master")["state"] == "FINISHED"
    assert set(cli.json("gc")) == {
        "dry_run", "objects_deleted", "bytes_freed", "contents_deleted", "nodes_deleted",
        "temp_files_removed", "temp_bytes_freed",
    }  # fmt: skip
    assert set(cli.json("fsck")) == {"ok", "commits", "trees", "contents", "objects", "problems"}
    assert set(cli.json("file", "delete", "r@master:/2024")) == {"commit"}
    assert cli.json("file", "diff", "r@master")[0]["new"] is None


def test_tables_show_human_sizes_and_local_times(cli, tmp_path):
    cli("repo", "create", "r")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (3 * 1024 * 1024 // 2))
    cli("file", "put", "r@master:/big.bin", str(big))
    assert re.search(r"/big\.bin\s+file\s+1\.5 MiB", cli("file", "list", "r@master").stdout)
    shown = cli("commit", "inspect", "r@master").stdout
    assert re.search(r"^Started\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d *$", shown, re.M)
    assert re.search(r"Size\s+1\.5 MiB", shown)
    assert re.search(r"finished\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+1\s+1\.5 MiB", cli(
        "commit", "list", "r"
    ).stdout)  # fmt: skip


def test_invalid_references_and_paths_are_usage_errors(cli):
    cli("repo", "create", "r")
    cli("file", "put", "r@master:/a.txt", "-", input=b"a")
    for args, message in [
        (("file", "get", "bad name@master:/a.txt"), "invalid reference 'bad name@master:/a.txt'"),
        (("file", "get", "r@master:/../a.txt"), "invalid path '/../a.txt': '..' is not allowed"),
        (("file", "list", "r@"), "name a branch or commit after '@'"),
        (("repo", "inspect", "no/such"), "invalid repo name 'no/such'"),
        (("commit", "inspect", "r@bad~branch"), "invalid reference"),
        (("branch", "create", "r@-x"), "invalid reference 'r@-x'"),
        (("file", "get", "r@master"), "r@master is a folder"),
    ]:
        result = cli(*args, code=2)
        assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1  # one line
        assert result.stdout == ""


def test_missing_things_exit_1_with_one_line(cli):
    cli("repo", "create", "r")
    for args, message in [
        (("repo", "inspect", "nope"), "nope"),
        (("commit", "inspect", "r@master"), "branch r@master does not exist yet"),
        (("commit", "inspect", "nope@master"), "nope"),
        (("file", "get", "r@master:/a.txt"), "branch r@master does not exist yet"),
        (("repo", "create", "r"), "r"),
        (("commit", "inspect", "r@" + "0" * 32), "0" * 32),
    ]:
        result = cli(*args, code=1)
        assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
    cli("file", "put", "r@master:/a.txt", "-", input=b"a")
    result = cli("file", "get", "r@master^3:/a.txt", code=1)
    assert "goes back 3 commits" in result.stderr


def test_stdin_put(cli):
    cli("repo", "create", "r")
    data = bytes(range(256)) * 50
    out = cli("file", "put", "r@master:/bin/data.bin", "-", input=data).stdout
    assert out.startswith("Wrote 1 file(s), 12.5 KiB to r@master in commit ")
    assert cli("file", "get", "r@master:/bin/data.bin").stdout_bytes == data
    # without SOURCE, piped stdin is read
    cli("file", "put", "r@master:/note.txt", input=b"piped\n")
    assert cli("file", "get", "r@master:/note.txt").stdout == "piped\n"
    # stdin needs a file path, not a folder
    refused = cli("file", "put", "r@master:/bin/", "-", input=b"x", code=2)
    assert "names no file" in refused.stderr


def test_put_sources_and_their_usage_errors(cli, local_dir, tmp_path, monkeypatch):
    cli("repo", "create", "r")
    # a file into a folder keeps its name; with a path it takes that path
    cli("file", "put", "r@master:/in/", str(local_dir / "readme.txt"))
    cli("file", "put", "r@master:/renamed.txt", str(local_dir / "readme.txt"))
    cli("file", "put", "r@master", str(local_dir / "readme.txt"))
    # -r is accepted for folders (which are recursive anyway)
    cli("file", "put", "r@master:/tree", str(local_dir), "-r")
    paths = [f["path"] for f in cli.json("file", "list", "r@master", "-r")]
    assert paths == [
        "/in/readme.txt", "/readme.txt", "/renamed.txt", "/tree/2024/q1/feb.csv",
        "/tree/2024/q1/jan.csv", "/tree/readme.txt",
    ]  # fmt: skip
    missing = cli("file", "put", "r@master:/x", str(tmp_path / "nope"), code=2)
    assert f"SOURCE '{tmp_path / 'nope'}' is not a local file or folder" in missing.stderr
    assert (
        "-r: SOURCE"
        in cli("file", "put", "r@master:/x", str(local_dir / "readme.txt"), "-r", code=2).stderr
    )
    older = cli("file", "put", "r@master^:/x", str(local_dir / "readme.txt"), code=2)
    assert "names an older commit" in older.stderr
    (tmp_path / "empty").mkdir()
    empty = cli("file", "put", "r@master:/e/", str(tmp_path / "empty"), code=1)
    assert "holds no files; nothing was written" in empty.stderr
    monkeypatch.setattr(store_commands, "_stdin_is_terminal", lambda: True)
    assert cli("file", "put", "r@master:/x", code=2).stderr.startswith("Error: give SOURCE")


def test_put_of_a_folder_refuses_links_unless_told(cli, local_dir, tmp_path):
    """Issue 13 item 4: a link in a folder is refused, naming it (nothing is written);
    --follow-links follows links inside the folder only."""
    cli("repo", "create", "r")
    (tmp_path / "secret").write_bytes(b"secret")
    (local_dir / "2024" / "leak").symlink_to(tmp_path / "secret")
    refused = cli("file", "put", "r@master:/t/", str(local_dir), code=2)
    assert refused.stderr.startswith("Error: ") and refused.stderr.count("\n") == 1
    assert "2024/leak is a symbolic link to" in refused.stderr
    assert "--follow-links" in refused.stderr
    outside = cli("file", "put", "r@master:/t/", str(local_dir), "--follow-links", code=2)
    assert "outside the folder being stored" in outside.stderr
    assert cli.json("commit", "list", "r") == []
    (local_dir / "2024" / "leak").unlink()
    (local_dir / "2024" / "readme").symlink_to(local_dir / "readme.txt")
    cli("file", "put", "r@master:/t/", str(local_dir), "--follow-links")
    assert cli("file", "get", "r@master:/t/2024/readme").stdout == "sales data\n"


def test_put_from_fsspec_urls(cli):
    base = f"memory://headrace-cli-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    fs.pipe({f"{base}/one.csv": b"1\n", f"{base}/deep/two.csv": b"2\n"})
    cli("repo", "create", "r")
    cli("file", "put", "r@master:/from-url/", f"{base}/one.csv")
    cli("file", "put", "r@master:/all", base)
    paths = [f["path"] for f in cli.json("file", "list", "r@master", "-r")]
    assert paths == ["/all/deep/two.csv", "/all/one.csv", "/from-url/one.csv"]
    assert cli("file", "get", "r@master:/all/deep/two.csv").stdout == "2\n"
    assert "-r: SOURCE" in cli("file", "put", "r@master:/x", f"{base}/one.csv", "-r", code=2).stderr
    missing = cli("file", "put", "r@master:/x", f"{base}/nothing.csv", code=1)
    assert "nothing.csv" in missing.stderr


def test_open_commit_workflow(cli, tmp_path):
    cli("repo", "create", "r")
    commit_id = cli("commit", "start", "r@master", "-m", "batch").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", commit_id)
    staged = cli("file", "put", "r@master:/a.txt", "-", input=b"a").stdout
    assert staged.startswith(f"Staged 1 file(s), 1 B in open commit {commit_id} of r@master")
    cli("file", "put", f"r@{commit_id}:/b.txt", "-", input=b"b")
    assert cli.json("commit", "list", "r")[0]["state"] == "OPEN"
    assert cli("file", "get", "r@master:/b.txt").stdout == "b"  # an open commit reads its staging
    again = cli("commit", "start", "r@master", code=1)
    assert "already has an open commit" in again.stderr
    timeout = cli("commit", "wait", "r@master", "--timeout", "0.05", code=1)
    assert "still open after 0.05 s" in timeout.stderr
    done = cli("commit", "finish", f"r@{commit_id}").stdout
    assert done == f"Finished commit {commit_id} of r@master: 2 file(s), 2 B\n"
    assert (
        cli("commit", "wait", "r@master").stdout == f"Commit {commit_id} of r@master is finished\n"
    )
    finished = cli("file", "put", f"r@{commit_id}:/c.txt", "-", input=b"c", code=1)
    assert "finished commits are immutable" in finished.stderr


def test_commit_squash_delete_and_file_copy_delete(cli):
    cli("repo", "create", "r")
    ids = []
    for name in ("a", "b", "c"):
        cli("file", "put", f"r@master:/{name}.txt", "-", input=name.encode())
        ids.append(cli.json("commit", "inspect", "r@master")["id"])
    assert (
        cli("commit", "squash", "r@master^").stdout
        == f"Squashed commit {ids[1]} of r into its children\n"
    )
    assert [c["id"] for c in cli.json("commit", "list", "r")] == [ids[2], ids[0]]
    assert cli("file", "get", "r@master:/b.txt").stdout == "b"
    assert cli("commit", "delete", "r@master").stdout == f"Deleted commit {ids[2]} of r\n"
    assert cli.json("commit", "inspect", "r@master")["id"] == ids[0]
    assert len(cli.json("commit", "list", "r", "--limit", "1")) == 1
    # copy: into a folder keeps the name; to another branch without a path keeps the path
    cli("file", "copy", "r@master:/a.txt", "r@master:/backup/")
    cli("file", "copy", "r@master:/a.txt", "r@other")
    assert cli("file", "get", "r@master:/backup/a.txt").stdout == "a"
    assert cli("file", "get", "r@other:/a.txt").stdout == "a"
    out = cli("file", "delete", "r@master:/backup").stdout
    assert out.startswith("Deleted r@master:/backup in commit ")
    assert [f["path"] for f in cli.json("file", "list", "r@master")] == ["/a.txt"]
    assert [b["name"] for b in cli.json("branch", "list", "r")] == ["master", "other"]
    assert cli("branch", "delete", "r@other").stdout == "Deleted branch r@other\n"
    assert [b["name"] for b in cli.json("branch", "list", "r")] == ["master"]


def test_file_list_pages(cli):
    cli("repo", "create", "r")
    for i in range(5):
        cli("file", "put", f"r@master:/f{i}.txt", "-", input=b"x")
    first = cli("file", "list", "r@master", "--limit", "2")
    assert "(first 2; continue with --start-after /f1.txt)" in first.stderr
    rest = cli.json("file", "list", "r@master", "--start-after", "/f1.txt")
    assert [f["path"] for f in rest] == ["/f2.txt", "/f3.txt", "/f4.txt"]


def test_progress_bar_shows_on_a_terminal_for_many_files(cli, local_dir, monkeypatch):
    buffer = io.StringIO()
    terminal = Console(file=buffer, force_terminal=True, width=100)
    monkeypatch.setattr(store_commands, "_error_console", lambda: terminal)
    cli("repo", "create", "r")
    cli("file", "put", "r@master:/few/", str(local_dir))
    assert buffer.getvalue() == ""  # three small files: no bar
    monkeypatch.setattr(store_commands, "PROGRESS_MIN_FILES", 3)
    cli("file", "put", "r@master:/many/", str(local_dir))
    assert "3/3 files" in buffer.getvalue() and "41 bytes" in buffer.getvalue()


def test_large_files_round_trip_through_chunking(cli, tmp_path, monkeypatch):
    buffer = io.StringIO()
    terminal = Console(file=buffer, force_terminal=True, width=100)
    monkeypatch.setattr(store_commands, "_error_console", lambda: terminal)
    monkeypatch.setattr(store_commands, "PROGRESS_MIN_BYTES", 1024 * 1024)
    data = random.Random(7).randbytes(5 * 1024 * 1024 + 123)
    (tmp_path / "big.bin").write_bytes(data)
    cli("repo", "create", "r")
    cli("file", "put", "r@master:/big.bin", str(tmp_path / "big.bin"))
    assert "1/1 files" in buffer.getvalue() and "5.0/5.0 MiB" in buffer.getvalue()
    cli("file", "put", "r@master:/piped.bin", "-", input=data)
    assert cli("file", "get", "r@master:/big.bin").stdout_bytes == data
    cli("file", "get", "r@master:/piped.bin", "-o", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data
    info = cli.json("file", "inspect", "r@master:/big.bin")
    assert info == cli.json("file", "inspect", "r@master:/piped.bin") | {"path": "/big.bin"}


def test_help_lists_the_store_commands():
    text = runner.invoke(app, ["--help"]).stdout
    for command in ("repo", "branch", "commit", "file", "merge", "fsck", "gc", "run"):
        assert re.search(rf"^\s+{command}\s", text, re.M), command
    put_help = runner.invoke(app, ["file", "put", "--help"]).stdout
    assert "--home PATH" in put_help and "HEADRACE_HOME" in put_help
    assert "HEADRACE_DB" in put_help and "HEADRACE_OBJECTS" in put_help


def test_environment_selects_the_store(home, monkeypatch, tmp_path):
    monkeypatch.setenv("HEADRACE_HOME", str(home))
    monkeypatch.setenv("HEADRACE_OBJECTS", str(tmp_path / "elsewhere"))
    cli = Cli()
    cli("repo", "create", "r")
    cli("file", "put", "r@master:/a.txt", "-", input=b"a")
    assert (home / "metadata.db").exists()
    assert any((tmp_path / "elsewhere").rglob("*"))
    assert not (home / "objects").exists()


def test_bad_store_options_are_usage_errors(home):
    bad_db = Cli("--home", str(home), "--db", "not a url")("repo", "list", code=2)
    assert bad_db.stderr.startswith("Error: --db: invalid metadata URL")
    bad_objects = Cli("--home", str(home), "--objects", "nosuchproto://x")("repo", "list", code=2)
    assert "Protocol not known: nosuchproto" in bad_objects.stderr


def test_scenario_on_postgresql(postgresql_metadata_url, tmp_path, local_dir):
    cli = Cli("--home", str(tmp_path / "pg-home"), "--db", postgresql_metadata_url)
    cli("repo", "create", "sales")
    cli("file", "put", "sales@master:/", str(local_dir))
    cli("branch", "create", "sales@dev", "--head", "sales@master")
    cli("file", "put", "sales@dev:/readme.txt", "-", input=b"dev\n")
    cli("file", "put", "sales@master:/readme.txt", "-", input=b"master\n")
    conflict = cli("merge", "sales@dev", "sales@master", code=1)
    assert "    /readme.txt" in conflict.stderr
    assert cli("file", "get", "sales@master:/readme.txt").stdout == "master\n"
    assert [r["name"] for r in cli.json("repo", "list")] == ["sales"]
    assert cli.json("fsck")["ok"] is True
    assert not (tmp_path / "pg-home" / "metadata.db").exists()


def test_the_cli_imports_the_store_only_when_a_store_command_runs():
    code = (
        "import sys, headrace.cli.main; "
        "print(sorted(m for m in ('sqlalchemy', 'fsspec', 'headrace.store.store') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_huge_ancestry_and_missing_content_rows_are_clear_errors(cli, home, tmp_path):
    """Issue 13 item 7: an ancestry beyond any SQL integer, and a file whose content row is
    gone, give one ``Error:`` line (they were OverflowError and KeyError tracebacks)."""
    cli("repo", "create", "r")
    cli("file", "put", "r@master:/a.txt", "-", input=b"a")
    huge = "r@master~999999999999999999999999"
    for args in (
        ("file", "list", huge),
        ("file", "get", huge + ":/a.txt"),
        ("file", "inspect", huge + ":/a.txt"),
        ("commit", "inspect", huge),
    ):
        result = cli(*args, code=1)
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, args
        assert "goes back 999999999999999999999999 commits" in result.stderr
    with Store.open(home) as store, store.meta.transaction() as conn:
        conn.exec_driver_sql("DELETE FROM contents")
    out = tmp_path / "out.txt"
    for args in (
        ("file", "get", "r@master:/a.txt", "-o", str(out)),
        ("file", "get", "r@master:/a.txt"),
    ):
        result = cli(*args, code=1)
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, args
        assert "content" in result.stderr and "fsck" in result.stderr
    assert not out.exists()


def test_failed_get_leaves_no_partial_file(cli, home, tmp_path):
    """Issue 13 item 11: ``file get -o X`` that fails midway removes ``X.headrace-part``."""
    cli("repo", "create", "r")
    data = random.Random(11).randbytes(3 * 1024 * 1024)  # chunked: several objects
    (tmp_path / "big.bin").write_bytes(data)
    cli("file", "put", "r@master:/big.bin", str(tmp_path / "big.bin"))
    with Store.open(home) as store:
        keys = sorted(store.objects.keys())
        assert len(keys) > 1
        Path(store.objects.location(keys[-1])).write_bytes(b"\x00damaged")
    out = tmp_path / "got" / "big.bin"
    result = cli("file", "get", "r@master:/big.bin", "-o", str(out), code=1)
    assert "corrupt" in result.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == []
