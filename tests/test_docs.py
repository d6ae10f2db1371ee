"""Docs stay in step with the CLI: every command has help, README names every command and code."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from batch.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"
EXIT_CODES = ("0", "1", "2", "3", "4", "130", "143")
COMMANDS = sorted(main.commands)


def test_the_commands_are_the_documented_ones() -> None:
    assert COMMANDS == ["reconcile", "run", "sandbox", "validate"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name: str) -> None:
    command = main.commands[name]
    assert command.help
    assert command.help.strip()
    assert command.get_short_help_str()
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.strip()


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help(name: str) -> None:
    command = main.commands[name]
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"paybatch {name} {param.opts[0]} has no help text"


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["validate", "--help"]])
def test_help_documents_every_exit_code(args: list[str]) -> None:
    output = CliRunner().invoke(main, args).output
    assert "Exit codes:" in output
    for code in EXIT_CODES:
        assert re.search(rf"(?m)^\s*{code}\b|\b{code}\s+by\b", output), code


def test_readme_names_every_command() -> None:
    text = README.read_text("utf-8")
    for name in COMMANDS:
        assert f"paybatch {name}" in text, f"README.md never mentions `paybatch {name}`"


@pytest.mark.parametrize("code", EXIT_CODES)
def test_readme_documents_every_exit_code(code: str) -> None:
    text = README.read_text("utf-8")
    # Tolerant of wording and layout (table, list, prose): the number must appear as a
    # number somewhere after the words "exit code".
    start = text.lower().find("exit code")
    assert start >= 0, "README.md has no exit codes section"
    assert re.search(rf"(?<![\w.]){code}(?![\w.])", text[start:]), f"exit code {code}"
