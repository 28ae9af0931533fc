"""The README's code blocks run as written, in order, in a fresh folder and a fresh store.

Every fenced block of ``README.md`` is one of:

* a ``bash``, ``sh`` or ``console`` block: run, each block in a ``bash -e -u -o pipefail``
  process of its own (a ``console`` block's ``$ `` lines are the commands and the lines after
  each one its exact standard output);
* a ``python`` block: run with this venv's interpreter;
* a block of any language saved as a file, marked ``<!-- readme-test: file PATH -->`` (a spec or
  a module that a later block uses), written under the working folder and not run itself;
* a block marked ``<!-- readme-test: skip (reason) -->``: not run. Only the blocks that would
  run this test itself or install packages are skipped; :data:`SKIPS_ALLOWED` caps their number.

``<!-- readme-test: expect TEXT -->`` (repeatable) before a block asserts that its output
(stdout and stderr; whitespace runs compared as one space) contains each TEXT, in order.
Any other block (a language this file cannot run, without ``file`` or ``skip``) fails the test,
so no block goes silently unchecked.

All blocks share one working folder, one ``HEADRACE_HOME`` (``home/``), ``HOME`` and
``TMPDIR`` under ``tmp_path``, with the venv's scripts first on ``PATH``, as a user's terminal
would after ``source .venv/bin/activate``; ``HEADRACE_DB`` and ``HEADRACE_OBJECTS`` are unset.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIPS_ALLOWED = 0
"""Skipped blocks allowed besides the first (the demo.sh/test.sh commands, never run here:
test.sh runs this test and both install the package; their own tests are the demo's and CI)."""
BLOCK_TIMEOUT = 900.0
"""Seconds one block may take before it is killed (generous: CI machines are loaded)."""

BASH = ["bash", "-e", "-u", "-o", "pipefail", "-c"]
"""How a shell block runs: any failing command (or pipe stage, or unset variable) fails it."""
SHELL_LANGUAGES = {"bash", "sh", "console"}
RUN_LANGUAGES = {*SHELL_LANGUAGES, "python"}
_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*readme-test:\s*(?P<body>.*?)\s*-->\s*$")


@dataclass
class Block:
    """One fenced code block of the README."""

    lang: str
    text: str
    line: int  # of the opening fence, 1-based
    skip: str | None = None  # the reason, for a skipped block
    file: str | None = None  # where a saved block is written
    expects: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"README.md line {self.line} ({self.lang or 'no language'} block)"


def parse(markdown: str) -> tuple[list[Block], list[str]]:
    """The fenced blocks of ``markdown`` with their directives, and every rule broken."""
    blocks: list[Block] = []
    errors: list[str] = []
    pending: list[tuple[int, str]] = []  # directives waiting for their block
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _DIRECTIVE.match(line)
        fence = _FENCE.match(line)
        if directive:
            pending.append((i + 1, directive["body"]))
        elif fence:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```"), None)
            if end is None:
                errors.append(f"README.md line {i + 1}: a code block that is never closed")
                break
            block = Block(fence["lang"].lower(), "\n".join(lines[i + 1 : end]) + "\n", i + 1)
            for at, body in pending:
                _apply(block, at, body, errors)
            pending = []
            _check(block, errors)
            blocks.append(block)
            i = end
        elif pending:
            at = pending[0][0]
            errors.append(f"README.md line {at}: a readme-test directive not right before a block")
            pending = []
        i += 1
    if pending:
        errors.append(f"README.md line {pending[0][0]}: a readme-test directive with no block")
    return blocks, errors


def _apply(block: Block, at: int, body: str, errors: list[str]) -> None:
    word, _, rest = body.partition(" ")
    rest = rest.strip()
    if word == "skip":
        reason = re.fullmatch(r"\((.*\S.*)\)", rest)
        if reason is None:
            errors.append(f"README.md line {at}: write the reason: skip (why it cannot run)")
        else:
            block.skip = reason[1]
    elif word == "file":
        path = PurePosixPath(rest)
        if not rest or path.is_absolute() or ".." in path.parts:
            errors.append(f"README.md line {at}: file needs a relative path inside the folder")
        else:
            block.file = rest
    elif word == "expect" and rest:
        block.expects.append(rest)
    else:
        errors.append(f"README.md line {at}: unknown readme-test directive {body!r}")


def _check(block: Block, errors: list[str]) -> None:
    if block.skip is not None and (block.file is not None or block.expects):
        errors.append(f"{block}: a skipped block is neither saved nor checked")
    elif block.file is not None and block.expects:
        errors.append(f"{block}: a saved block does not run; put expect on the block that runs it")
    elif block.lang == "console" and block.expects:
        errors.append(f"{block}: a console block shows its exact output; expect is not needed")
    elif block.skip is None and block.file is None and block.lang not in RUN_LANGUAGES:
        errors.append(
            f"{block}: the README test cannot run a {block.lang or 'plain'} block; make it "
            f"{'/'.join(sorted(RUN_LANGUAGES))}, or mark it <!-- readme-test: file PATH --> or "
            "<!-- readme-test: skip (reason) -->"
        )


def console_steps(text: str) -> list[tuple[str, str]]:
    """A console block as ``(command, expected stdout)`` pairs (``\\`` continues a command)."""
    steps: list[tuple[str, list[str]]] = []
    continued = False
    for line in text.splitlines():
        if continued:
            steps[-1] = (steps[-1][0] + "\n" + line, steps[-1][1])
        elif line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"output before the first '$ ' command: {line!r}")
        continued = bool(steps) and not steps[-1][1] and line.endswith("\\")
    return [(command, "\n".join(output).rstrip()) for command, output in steps]


def _normalise(text: str) -> str:
    return " ".join(text.split())


# -- the rules, checked quickly


def test_parse_reads_directives_and_refuses_unrunnable_blocks() -> None:
    """The rules themselves: a block must run, be saved or be skipped with a reason."""
    text = (
        "<!-- readme-test: skip (installs) -->\n```bash\npip install x\n```\n"
        "<!-- readme-test: file a/spec.yaml -->\n```yaml\nname: a\n```\n"
        "<!-- readme-test: expect 42 -->\n```python\nprint(42)\n```\n"
        "```yaml\nnot: run\n```\n"
        "<!-- readme-test: skip -->\n```bash\ntrue\n```\n"
        "<!-- readme-test: file ../out.txt -->\n```text\nx\n```\n"
        "<!-- readme-test: expect 1 -->\n```console\n$ echo 1\n1\n```\n"
        "<!-- readme-test: expect lost -->\n\nprose\n"
    )
    blocks, errors = parse(text)
    assert [(b.lang, b.skip, b.file, b.expects) for b in blocks[:3]] == [
        ("bash", "installs", None, []),
        ("yaml", None, "a/spec.yaml", []),
        ("python", None, None, ["42"]),
    ]
    assert blocks[2].text == "print(42)\n"
    assert len(errors) == 6, errors
    assert "cannot run a yaml block" in errors[0]
    assert "write the reason" in errors[1]
    assert "relative path" in errors[2]
    assert "cannot run a text block" in errors[3]
    assert "console block shows its exact output" in errors[4]
    assert "not right before a block" in errors[5]


def test_console_steps_pair_commands_with_their_output() -> None:
    steps = console_steps("$ echo a \\\n  b\na b\n$ true\n$ printf 'x\\ny\\n'\nx\ny\n")
    assert steps == [("echo a \\\n  b", "a b"), ("true", ""), ("printf 'x\\ny\\n'", "x\ny")]


def test_every_readme_block_is_run_saved_or_skipped_with_a_reason() -> None:
    blocks, errors = parse(README.read_text(encoding="utf-8"))
    assert not errors, "\n".join(errors)
    skipped = [b for b in blocks if b.skip is not None]
    assert len(skipped) <= SKIPS_ALLOWED, [f"{b}: {b.skip}" for b in skipped]
    assert sum(b.skip is None and b.file is None for b in blocks) >= 10


def test_readme_starts_with_the_demo_and_test_commands() -> None:
    """The first thing a reader sees: the two commands, in the first block (after the title)."""
    lines = [
        line
        for line in README.read_text(encoding="utf-8").splitlines()
        if line.strip() and not _DIRECTIVE.match(line)
    ]
    assert lines[0] == "# headrace"
    assert lines[1] == "```bash"
    assert lines[2].startswith("bash scripts/demo.sh ")
    assert lines[3].startswith("bash scripts/test.sh --all ")
    assert lines[4] == "```"


def test_readme_links_stay_in_the_repository() -> None:
    """Relative links point into a clone (not at a development machine's folders)."""
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]
    assert local, "the README links no file of the repository"
    for target in local:
        path = PurePosixPath(target.split("#")[0])
        assert not path.is_absolute() and ".." not in path.parts, target


# -- the blocks, run


def _run(args: list[str], cwd: Path, env: dict[str, str], what: str) -> tuple[int, str, str]:
    """Run ``args`` in a session of its own; kill the whole session if it outlives the timeout."""
    with subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"{what} ran longer than {BLOCK_TIMEOUT:g} s\n{out}\n{err}")
    return proc.returncode, out, err


def _environment(tmp_path: Path, scripts: Path, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    for name in ("home", "user-home"):
        (tmp_path / name).mkdir()
    env.update(
        HEADRACE_HOME=str(tmp_path / "home"),
        HOME=str(tmp_path / "user-home"),
        # A short TMPDIR: Ray puts Unix sockets under it, whose paths may not exceed 107 bytes.
        TMPDIR=str(tmp),
        PATH=f"{scripts}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(scripts.parent),
    )
    return env


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_readme_blocks_run_as_written(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Every runnable README block exits 0, in order, and prints what it says it prints."""
    blocks, errors = parse(README.read_text(encoding="utf-8"))
    assert not errors, "\n".join(errors)
    scripts = Path(sysconfig.get_path("scripts"))
    assert (scripts / "headrace").exists(), f"no headrace script in {scripts}: pip install -e ."
    tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(tmp, ignore_errors=True))
    env = _environment(tmp_path, scripts, tmp)
    work = tmp_path / "work"
    work.mkdir()
    repo_entries = {p.name for p in ROOT.iterdir()}
    ran = 0
    assert blocks[0].text.startswith("bash scripts/demo.sh"), blocks[0]
    for block in blocks[1:]:
        if block.skip is not None:
            continue
        if block.file is not None:
            target = work / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text, encoding="utf-8")
            continue
        ran += 1
        if block.lang == "console":
            for command, expected in console_steps(block.text):
                code, out, err = _run([*BASH, command], work, env, str(block))
                assert code == 0, f"{block}: `{command}` exited {code}\n{out}\n{err}"
                got = "\n".join(line.rstrip() for line in out.rstrip().splitlines())
                assert got == expected, f"{block}: `{command}` printed\n{got}\nnot\n{expected}"
            continue
        if block.lang == "python":
            args = [sys.executable, "-c", block.text]
        else:
            args = [*BASH, block.text]
        code, out, err = _run(args, work, env, str(block))
        assert code == 0, f"{block} exited {code}\n--- stdout\n{out}\n--- stderr\n{err}"
        seen = _normalise(out + "\n" + err)
        position = 0
        for expect in block.expects:
            found = seen.find(_normalise(expect), position)
            assert found >= 0, f"{block} did not print {expect!r} (in order)\n{out}\n{err}"
            position = found + len(_normalise(expect))
    assert ran >= 10
    # Nothing escaped the temporary folders: no default store, none of the blocks' files in the
    # clone (compared by name with what the working folder holds, so that other programs writing
    # into the clone meanwhile do not matter).
    assert not (tmp_path / "user-home" / ".headrace").exists()
    leaked = ({p.name for p in ROOT.iterdir()} - repo_entries) & {p.name for p in work.iterdir()}
    assert not leaked, f"README blocks wrote into the clone: {sorted(leaked)}"
