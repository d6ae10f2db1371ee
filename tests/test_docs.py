"""Docs stay in step with the CLI: every command has help; help and README show the
exit-code table of batch/errors.py."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from batch.cli import main
from batch.errors import EXIT_CODES, PaybatchError, precedence_text
from batch.shutdown import EXIT_CODES as SIGNAL_EXIT_CODES

README = Path(__file__).resolve().parent.parent / "README.md"
COMMANDS = sorted(main.commands)


def test_the_commands_are_the_documented_ones() -> None:
    assert COMMANDS == ["reconcile", "run", "sandbox", "serve", "validate"]


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


def _help_exit_codes(output: str) -> list[int]:
    """The codes listed in the exit-code block of a --help text."""
    block = output.split("Exit codes (", 1)[1]
    return [int(code) for code in re.findall(r"(?m)^\s+(\d+)\s+[a-z_]+\s", block)]


@pytest.mark.parametrize("name", COMMANDS)
def test_each_commands_help_shows_its_own_exit_codes(name: str) -> None:
    output = CliRunner().invoke(main, [name, "--help"]).output
    own = [entry for entry in EXIT_CODES if name in entry.commands]
    assert _help_exit_codes(output) == [entry.code for entry in own]
    flat = " ".join(output.split())
    for entry in own:
        assert entry.meaning_of(name) in flat, (name, entry.code)
    assert f"the first of {precedence_text(name)} wins" in flat


def test_every_exit_code_an_error_can_carry_is_in_the_table() -> None:
    import batch.api
    import batch.auth  # their error classes join the tree

    def tree(cls: type[PaybatchError]) -> list[type[PaybatchError]]:
        return [cls, *(c for sub in cls.__subclasses__() for c in tree(sub))]

    classes = tree(PaybatchError)
    assert {batch.api.LookupFailedError, batch.auth.TokenEndpointUnreachableError} <= set(classes)
    carried = {cls.exit_code for cls in classes} | set(SIGNAL_EXIT_CODES.values())
    assert carried <= {entry.code for entry in EXIT_CODES}


def _readme_exit_rows() -> dict[int, str]:
    """The README's exit-code table: code -> its whole row."""
    text = README.read_text("utf-8")
    assert "\n## Exit codes\n" in text, "README.md has no '## Exit codes' section"
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    return {int(m[1]): m[0] for m in re.finditer(r"(?m)^\| *(\d+) *\|.*$", section)}


def test_the_readme_lists_every_exit_code_with_its_meaning() -> None:
    rows = _readme_exit_rows()
    assert sorted(rows) == [entry.code for entry in EXIT_CODES]
    for entry in EXIT_CODES:
        assert entry.meaning in rows[entry.code], f"README's row for {entry.code}"
        assert f"`{entry.name}`" in rows[entry.code], f"README's row for {entry.code}"
    section = README.read_text("utf-8").split("\n## Exit codes\n", 1)[1]
    assert precedence_text() in section.split("\n## ", 1)[0]


def test_readme_names_every_command() -> None:
    text = README.read_text("utf-8")
    for name in COMMANDS:
        assert f"paybatch {name}" in text, f"README.md never mentions `paybatch {name}`"
