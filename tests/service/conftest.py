"""Fixtures for the job service: a store with repos, a stage with a failed job, and a real
``headrace serve`` process on a free port."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from headrace.cli.main import app

TOKEN = "test-token-123"

UPPER = """
def run(inputs, output):
    for name, folder in inputs.items():
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                text = f.read_text()
                if "boom" in text:
                    raise ValueError(f"cannot process {f.name}")
                print("did", f.name)
                (output / f.name).write_text(text.upper())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def headrace_cli(home: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, [*args, "--home", str(home)])
    assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
    return result.stdout


def seed_store(home: Path, folder: Path) -> dict[str, str]:
    """Repo ``data`` (/a.txt, /b.txt, /c.txt 'boom', /docs/readme.md), stage ``up`` with one
    FAILURE job (c.txt fails) after one SUCCESS job. Returns ids by name."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "upper.py").write_text(textwrap.dedent(UPPER))
    spec = {
        "name": "up",
        "input": {"pfs": {"repo": "data", "glob": "/*"}},
        "transform": {"python": "upper:run"},
    }
    (folder / "up.yaml").write_text(json.dumps(spec))
    headrace_cli(home, "repo", "create", "data")
    files = folder / "files"
    files.mkdir()
    for name, text in {"a.txt": "alpha\n", "b.txt": "beta\n"}.items():
        (files / name).write_text(text)
        headrace_cli(home, "file", "put", f"data@master:/{name}", str(files / name))
    headrace_cli(home, "stage", "create", "-f", str(folder / "up.yaml"))
    headrace_cli(home, "stage", "run", "up")
    first = json.loads(headrace_cli(home, "commit", "inspect", "data@master", "--json"))["id"]
    (files / "c.txt").write_text("boom")
    headrace_cli(home, "file", "put", "data@master:/c.txt", str(files / "c.txt"))
    (files / "readme.md").write_text("# read me\n")
    headrace_cli(home, "file", "put", "data@master:/docs/readme.md", str(files / "readme.md"))
    out = headrace_cli(home, "stage", "run", "up", code=1)
    failed_job = re.search(r"Job ([0-9a-f]{32})", out).group(1)
    head = json.loads(headrace_cli(home, "commit", "inspect", "data@master", "--json"))["id"]
    up_head = json.loads(headrace_cli(home, "commit", "inspect", "up@master", "--json"))["id"]
    return {"first": first, "head": head, "failed_job": failed_job, "up_head": up_head}


@dataclass
class Service:
    """A running ``headrace serve`` and a small HTTP client for it."""

    url: str
    home: Path
    token: str | None
    process: subprocess.Popen[bytes]
    ids: dict[str, str] = field(default_factory=dict)

    def request(
        self, method: str, path: str, body: Any = None, token: str | None | bool = True
    ) -> tuple[int, dict[str, str], bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        use = self.token if token is True else (token or None)
        if use:
            req.add_header("Authorization", f"Bearer {use}")
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get(self, path: str, status: int = 200) -> Any:
        code, _, data = self.request("GET", path)
        assert code == status, (path, code, data[:2000])
        return json.loads(data)

    def post(self, path: str, body: Any = None, status: int = 200) -> Any:
        code, _, data = self.request("POST", path, body if body is not None else {})
        assert code == status, (path, code, data[:2000])
        return json.loads(data)


def headrace_command() -> list[str]:
    exe = Path(sys.executable).with_name("headrace")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from headrace.cli.main import main; main()"]


def start_service(
    home: Path, token: str | None = TOKEN, *extra: str, timeout: float = 60.0
) -> Service:
    port = free_port()
    args = [*headrace_command(), "serve", "--port", str(port), "--home", str(home), *extra]
    if token:
        args += ["--token", token]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    process = subprocess.Popen(args, env=env)
    service = Service(f"http://127.0.0.1:{port}", home, token, process)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"headrace serve exited with {process.returncode}")
        try:
            code, _, _ = service.request("GET", "/healthz", token=False)
            if code == 200:
                return service
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("headrace serve did not answer /healthz in time")
        time.sleep(0.1)


def stop_service(service: Service) -> None:
    service.process.terminate()
    try:
        service.process.wait(30)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("service")
    home = root / "home"
    ids = seed_store(home, root / "project")
    return home, ids


@pytest.fixture(scope="module")
def service(seeded) -> Iterator[Service]:
    home, ids = seeded
    s = start_service(home, TOKEN, "--no-daemon")
    s.ids = ids
    yield s
    stop_service(s)


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


MANY = 10_500  # "10k+": datums of one stage job, and pipeline runs


def add_many(home: Path, job_id: str, n: int = MANY) -> None:
    """``n`` datum rows for stage job ``job_id`` (every 100th failed, the others succeeded with
    distinct times) and ``n`` ended pipeline runs, written straight into the database (what a
    long-lived service accumulates)."""
    import sqlalchemy as sa

    from headrace.service.runs import RunHistory
    from headrace.stages.catalog import _datums
    from headrace.store.store import Store

    store = Store.open(home)
    try:
        RunHistory(store.meta)  # its tables
        with store.meta.read() as conn:
            template = conn.execute(sa.select(_datums).where(_datums.c.job_id == job_id)).first()
        assert template is not None, job_id
        datums = [
            {
                **template._asdict(),
                "datum_id": f"{i:032x}",
                "state": "failed" if i % 100 == 0 else "success",
                "seconds": (i * 7919 % MANY) / 1000.0,
                "error": f"ValueError: datum {i}" if i % 100 == 0 else "",
                "log": f"log of datum {i}\n",
            }
            for i in range(n)
        ]
        runs = [
            {
                "id": f"run-bulk-{i:06d}", "state": "DONE", "streaming": False, "source": "bulk",
                "created_at": 1.0e9 + i, "started_at": 1.0e9 + i, "finished_at": 1.0e9 + i + 1,
                "updated_at": 1.0e9 + i + 1, "error": "", "cancel_requested": False,
            }
            for i in range(n)
        ]  # fmt: skip
        with store.meta.transaction() as conn:
            for at in range(0, n, 2000):
                conn.execute(_datums.insert(), datums[at : at + 2000])
                conn.execute(sa.table("service_runs", *[sa.column(k) for k in runs[0]]).insert(),
                             runs[at : at + 2000])  # fmt: skip
    finally:
        store.close()


@pytest.fixture(scope="module")
def big_service(tmp_path_factory) -> Iterator[Service]:
    """A service over a store with a stage job of 10k+ datums and 10k+ pipeline runs."""
    root = tmp_path_factory.mktemp("big")
    ids = seed_store(root / "home", root / "project")
    add_many(root / "home", ids["failed_job"])
    s = start_service(root / "home", TOKEN, "--no-daemon")
    s.ids = ids
    yield s
    stop_service(s)
