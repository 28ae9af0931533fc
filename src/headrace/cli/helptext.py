"""How ``headrace ... --help`` and usage lines read: classic Unix notation on every typer version.

typer 0.29 writes a required argument as ``{FILE}`` on the usage line and appends the Python type
to every argument and to options without a metavar (``FILE <str>``, ``--message <str>``,
``ARGS... <list[str]>``). headrace's help uses the usual notation instead: ``FILE`` for a required
argument, ``[SOURCE]`` for an optional one, ``ARGS...`` for several, and an upper-case word
(``TEXT``, ``INTEGER``) for an option's value when the option names no metavar of its own.

:class:`HeadraceTyper` is the :class:`typer.Typer` of ``headrace`` and of each command group;
the commands it makes are :class:`HeadraceCommand`, which renders the usage line and the
``Arguments`` / ``Options`` sections that way. Nothing else about typer's behaviour changes.

>>> plain_type_names("-m, --message <str>"), plain_type_names("--limit <int>")
('-m, --message TEXT', '--limit INTEGER')
"""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.core import TyperCommand

__all__ = ["HeadraceCommand", "HeadraceTyper", "plain_type_names"]

_TYPE = re.compile(r"<([^<>\s]+)>")
_TYPE_WORDS = {
    "str": "TEXT",
    "int": "INTEGER",
    "float": "NUMBER",
    "bool": "BOOLEAN",
    "path": "PATH",
    "file": "FILE",
    "directory": "FOLDER",
    "list[str]": "TEXT",
    "list[int]": "INTEGER",
}


def plain_type_names(text: str) -> str:
    """``text`` with typer's ``<type>`` labels replaced by upper-case words."""

    def word(match: re.Match[str]) -> str:
        name = match[1]
        return _TYPE_WORDS.get(name, name.upper())

    return _TYPE.sub(word, text)


def _argument_name(param: Any) -> str:
    name = str(param.metavar or (param.name or "").upper())
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    return name


class HeadraceCommand(TyperCommand):
    """A typer command whose usage line and help sections use classic notation."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name, text = record
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param), text))
            elif param.param_type_name == "option":
                options.append((plain_type_names(name), text))
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


class HeadraceTyper(typer.Typer):
    """A :class:`typer.Typer` whose commands are :class:`HeadraceCommand` unless told otherwise."""

    def command(self, name: str | None = None, *, cls: Any = None, **kwargs: Any) -> Any:
        return super().command(name, cls=cls or HeadraceCommand, **kwargs)
