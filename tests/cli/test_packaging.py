"""What a user installs: the LICENSE the metadata names, package data that exists, the
``headrace`` entry points (``python -m headrace``, ``--version``), and help that reads well."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

import headrace
from headrace.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "headrace"
runner = CliRunner()


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_file_holds_the_apache_license_the_metadata_names():
    project = pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text.splitlines()[1]
    assert "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_every_package_data_pattern_matches_a_file():
    patterns = pyproject()["tool"]["setuptools"]["package-data"]["headrace"]
    for pattern in patterns:
        assert list(PACKAGE.glob(pattern)), f"package-data pattern {pattern!r} matches nothing"


def test_python_dash_m_headrace_is_the_command_line():
    proc = subprocess.run(
        [sys.executable, "-m", "headrace", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"headrace {headrace.__version__} (Python 3.")


@pytest.mark.parametrize("args", [["--version"], ["version"]])
def test_version_option_and_command(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert result.stdout == (f"headrace {headrace.__version__} (Python {sys.version.split()[0]})\n")


def _helps() -> dict[str, str]:
    """The ``--help`` text of every command, by its full name (``headrace file put``).

    Built from one click command tree: invoking the app per command would rebuild the tree
    each time."""
    root = typer.main.get_command(app)
    helps: dict[str, str] = {}

    def walk(command: Any, name: str, parent: Any) -> None:
        ctx = command.make_context(
            name, [], parent=parent, resilient_parsing=True, terminal_width=200
        )
        helps[ctx.command_path] = command.get_help(ctx)
        if hasattr(command, "list_commands"):  # a group
            for sub_name in command.list_commands(ctx):
                sub = command.get_command(ctx, sub_name)
                assert sub is not None
                walk(sub, sub_name, ctx)

    walk(root, "headrace", None)
    return helps


def test_every_help_uses_plain_notation():
    """typer 0.29 writes ``{FILE}`` on usage lines and ``<str>`` / ``<list[str]>`` after
    arguments and options; headrace's help uses FILE, [ARG], ARGS... and TEXT instead."""
    helps = _helps()
    assert len(helps) > 40
    for path, text in helps.items():
        usage = text.splitlines()[0]
        assert usage.startswith(f"Usage: {path} [OPTIONS]"), usage
        assert "{" not in usage, usage
        for bad in ("<str>", "<int>", "<float>", "<list[", "<path>", "<bool>"):
            assert bad not in text, (path, bad)


@pytest.mark.parametrize(
    ("command", "usage", "entries"),
    [
        (["run"], "Usage: headrace run [OPTIONS] FILE [ARGS...]", ["  FILE ", "  ARGS... "]),
        (
            ["file", "put"],
            "Usage: headrace file put [OPTIONS] REF:/path [SOURCE]",
            ["  REF:/path ", "  SOURCE ", "-m, --message TEXT"],
        ),
        (
            ["branch", "create"],
            "Usage: headrace branch create [OPTIONS] REPO@BRANCH",
            ["  REPO@BRANCH ", "--head REF"],
        ),
        (["commit", "list"], "Usage: headrace commit list [OPTIONS] [REPO]", ["--trace ID"]),
        (["merge"], "Usage: headrace merge [OPTIONS] SOURCE TARGET", ["-m, --message TEXT"]),
    ],
)
def test_help_of_some_commands(command, usage, entries):
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.stdout.splitlines()[0] == usage
    for entry in entries:
        assert entry in result.stdout, entry


def test_a_usage_error_shows_the_plain_usage_line():
    result = runner.invoke(app, ["branch", "create"])
    assert result.exit_code == 2
    assert "Usage: headrace branch create [OPTIONS] REPO@BRANCH" in result.output
    assert "Missing argument 'REPO@BRANCH'" in result.output


def test_top_level_help_shows_the_version_option():
    result = runner.invoke(app, ["--help"])
    assert "--version" in result.stdout
