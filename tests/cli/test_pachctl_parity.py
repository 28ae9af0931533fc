"""pachctl's file commands as headrace has them: put file --append, --untar, a URL whose
fsspec backend is missing (pachctl put file -a / --untar / -f URL, docs: 'pachctl put file')."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from headrace.cli.main import app


class Cli:
    """Runs ``headrace`` with one test's store."""

    def __init__(self, home: Path) -> None:
        self.options = ["--home", str(home)]

    def __call__(self, *args: str, input: bytes | None = None, code: int | None = 0) -> Any:
        result = CliRunner().invoke(app, [*args, *self.options], input=input)
        if code is not None:
            assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch) -> Cli:
    for name in ("HEADRACE_HOME", "HEADRACE_DB", "HEADRACE_OBJECTS"):
        monkeypatch.delenv(name, raising=False)
    return Cli(tmp_path / "home")


def test_put_append_adds_to_the_end_of_a_file(cli: Cli) -> None:
    cli("repo", "create", "r")
    cli("file", "put", "r@master:/log.txt", "-", input=b"one\n")
    cli("file", "put", "r@master:/log.txt", "-", "--append", input=b"two\n")
    assert cli("file", "get", "r@master:/log.txt").stdout == "one\ntwo\n"
    cli("file", "put", "r@master:/new.txt", "-", "-a", input=b"x")  # no file yet: written
    assert cli("file", "get", "r@master:/new.txt").stdout == "x"


def test_put_untar_puts_the_files_of_an_archive(cli: Cli, tmp_path: Path) -> None:
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("a.png", b"A"), ("sub/b.png", b"B")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cli("repo", "create", "r")
    cli("file", "put", "r@master:/in/", str(archive), "--untar")
    listed = cli.json("file", "list", "r@master:/in", "-r")
    assert sorted(f["path"] for f in listed if f["type"] == "file") == [
        "/in/a.png",
        "/in/sub/b.png",
    ]
    assert cli("file", "get", "r@master:/in/sub/b.png").stdout == "B"
    not_tar = tmp_path / "plain.txt"
    not_tar.write_text("hello")
    refused = cli("file", "put", "r@master:/", str(not_tar), "--untar", code=1)
    assert "not a readable tar archive" in refused.stderr


def test_put_from_a_url_without_its_backend_says_what_to_install(cli: Cli) -> None:
    cli("repo", "create", "r")
    result = cli("file", "put", "r@master:/x", "gcs://bucket/key", code=1)
    assert result.stderr.startswith("Error: SOURCE 'gcs://bucket/key': ")
    assert "install" in result.stderr
