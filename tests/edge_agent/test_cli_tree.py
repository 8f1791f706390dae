"""`loyalpump` builds only the command group it runs, and says exactly what the whole tree says.

`main` gives typer a tree in which only the group named on the command line has its
commands (the others keep their name and help), so a start does not build every command's
parameters. These tests hold it to the whole tree's word: every command's help, and the
refusals of bad input, are the same text and exit status as from the tree built in full.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
import typer
from typer.core import TyperGroup

from edge_agent.cli.main import app, command_for, main


def command_paths(group: TyperGroup, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, TyperGroup):
            yield from command_paths(command, (*prefix, name))


ENTRY = importlib.import_module("edge_agent.cli.main")  # the module; the package's `main` is main
FULL = typer.main.get_command(app)
assert isinstance(FULL, TyperGroup)
PATHS = list(command_paths(FULL))


def outcome(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int | str | None, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def test_the_tree_is_the_whole_program() -> None:
    assert len(PATHS) > 70  # every command of the program is checked below
    assert {path[0] for path in PATHS} == {"demo", "edge", "sim", "cloud"}


def test_help_builds_no_group_in_full() -> None:
    shells = command_for(["--help"])
    for name in ("edge", "sim", "cloud"):
        group = shells.commands[name]
        assert isinstance(group, TyperGroup)
        assert group.commands == {}
    member = command_for(["edge", "member", "show"]).commands["edge"]
    assert isinstance(member, TyperGroup)
    assert "member" in member.commands


CASES = [
    [],
    ["--help"],
    ["nope"],
    ["edge"],
    ["edge", "nope"],
    ["edge", "member", "show"],
    ["edge", "member", "show", "-c", "x.toml", "--bogus"],
    ["cloud", "station", "add", "--bogus"],
    ["sim", "dart", "--pumps", "99"],
    *([*path, "--help"] for path in PATHS),
]


@pytest.mark.parametrize("args", CASES, ids=" ".join)
def test_same_text_and_status_as_the_whole_tree(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lazy = outcome(args, capsys)
    monkeypatch.setattr(ENTRY, "command_for", lambda _: FULL)
    assert outcome(args, capsys) == lazy
    code, out, err = lazy
    assert code in (0, 2)
    assert out or err
