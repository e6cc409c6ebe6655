"""Every ``fairledger`` command the README and docs show still exists, with the options shown.

Examples in code blocks are parsed by the real command line (Typer/click) without running
them: an unknown command, an unknown option or a missing argument fails here instead of in a
reader's shell. Synopses (``[--format table|csv]``, ``FILE``, ``…``) are checked for their
command and option names only.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.main import get_command

from api.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GLOBAL_OPTIONS = {"--db", "--config"}
SYNOPSIS = re.compile(r"[\[\]…|]|\b[A-Z]{2,}[A-Z_.]*\b")


def _examples(page: Path) -> list[tuple[str, str, bool]]:
    """Return (where, command line, whole) for each ``fairledger`` line in the page's code
    blocks (whole: parsed as given) and each inline ```fairledger …``` span (names only)."""
    found = []
    fenced = False
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
        in_code = fenced or line.startswith("    ")
        text = line.strip().removeprefix("$ ")
        if in_code and text.startswith("fairledger "):
            start = i
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i].strip()
            text = re.sub(r"\s+#\s.*$", "", text)  # a trailing comment
            found.append((f"{page.name}:{start + 1}", text, True))
        elif not in_code:
            for span in re.findall(r"`(fairledger [^`]+)`", line):
                if not span.removeprefix("fairledger ").lstrip("-").startswith(("…", "config s")):
                    found.append((f"{page.name}:{i + 1}", span, False))
        i += 1
    return found


EXAMPLES = [example for page in PAGES for example in _examples(page)]


def _command(tokens: list[str]) -> tuple[Any, list[str], list[str]]:
    """Return (command, its arguments, the path of names) for ``fairledger`` + ``tokens``."""
    command: Any = get_command(app)
    path: list[str] = []
    rest = list(tokens)
    while rest:
        if rest[0] in GLOBAL_OPTIONS:
            rest = rest[2:]
            continue
        if isinstance(command, TyperGroup) and rest[0] in command.commands:
            path.append(rest[0])
            command = command.commands[rest.pop(0)]
            continue
        break
    return command, rest, path


def test_the_docs_show_commands() -> None:
    # the collector finds what it is meant to: blocks and inline spans, in the README and docs
    assert sum(whole for *_, whole in EXAMPLES) > 30 and len(EXAMPLES) > 80, EXAMPLES
    pages = {where.split(":")[0] for where, *_ in EXAMPLES}
    assert {"README.md", "money.md", "reports.md", "scheduled-ingest.md"} <= pages


@pytest.mark.parametrize(("where", "line", "whole"), EXAMPLES, ids=[w for w, *_ in EXAMPLES])
def test_a_documented_command_parses(where: str, line: str, whole: bool) -> None:
    command, args, path = _command(shlex.split(line.replace("<", "").replace(">", ""))[1:])
    assert path, f"{where}: no such command: {line}"
    if isinstance(command, TyperGroup):
        assert not whole and not args, f"{where}: incomplete command: {line}"
        return
    if not whole or SYNOPSIS.search(" ".join(args)):
        known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
        shown = {re.split(r"[=\]|]", token)[0] for token in re.findall(r"--[\w-]+", line)}
        unknown = shown - known - GLOBAL_OPTIONS
        assert not unknown, f"{where}: {' '.join(path)} has no option {sorted(unknown)}"
        return
    try:
        command.make_context(" ".join(["fairledger", *path]), args)
    except typer.TyperException as exc:  # click's UsageError, as Typer ships it
        pytest.fail(f"{where}: `{line}` does not parse: {exc}")
