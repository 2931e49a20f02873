"""Every command a user can type is documented: in --help and in the README's command table."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import base.cli
import push.cli
import rest.cli

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def subcommands(
    parser: argparse.ArgumentParser, prefix: str
) -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append((f"{prefix} {name}", sub))
                out.extend(subcommands(sub, f"{prefix} {name}"))
    return out


ALL = [
    *subcommands(push.cli.build_parser(), "RestPusher.py"),
    *subcommands(rest.cli.build_parser(), "cogent-rest"),
    *subcommands(base.cli.build_parser(), "cogent-base"),
]


@pytest.mark.parametrize(("command", "parser"), ALL, ids=[c for c, _ in ALL])
def test_every_command_has_help_text(command, parser):
    assert parser.description or parser.format_help().count("\n") > 3, command
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{command} {action.option_strings[0]} has no help text"


@pytest.mark.parametrize("command", [c for c, _ in ALL])
def test_every_command_is_in_the_readme(command):
    words = command.split()
    if words[0] == "cogent-rest" and words[1:2] == ["keys"] and len(words) == 2:
        return  # "keys" is only a group; its subcommands are checked
    assert f"`{command}" in README or command in README, f"README does not mention {command!r}"


@pytest.mark.slow  # starts a subprocess
def test_restpusher_help_runs_from_a_checkout():
    done = subprocess.run(
        [sys.executable, "RestPusher.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    for name, _ in subcommands(push.cli.build_parser(), ""):
        assert name.strip() in done.stdout


def test_every_command_in_the_readme_exists():
    import re

    known = {c for c, _ in ALL}
    for first in ("RestPusher.py", "cogent-rest", "cogent-base"):
        for found in re.findall(rf"`{re.escape(first)}((?: [a-z][a-z-]*)+)", README):
            words = found.split()
            command = (
                " ".join([first, *words[:2]]) if first == "cogent-rest" else f"{first} {words[0]}"
            )
            if first == "cogent-rest" and words[0] == "serve":
                command = "cogent-rest serve"
            assert command in known, f"README mentions {command!r}, which does not exist"


def test_every_test_the_docs_cite_exists():
    """docs/REPLICATION.md and friends prove the contract by naming tests: a renamed or
    deleted test must not leave a rule that only looks proven."""
    import re

    cited = set()
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        cited |= set(re.findall(r"(tests/[\w/]+\.py)::(\w+)", doc.read_text()))
    assert len(cited) > 20
    missing = [
        f"{path}::{name}"
        for path, name in sorted(cited)
        if not re.search(rf"^(async )?def {name}\b", (REPO / path).read_text(), re.M)
    ]
    assert not missing, missing
