"""The docs tell the truth: README.md and docs/contracts.md against the code (after datasette's
test_docs.py).

- Every `loyalpump …` command the README or docs/contracts.md shows exists, with every option
  shown; every command of the program is in both; docs/contracts.md's command tables show
  every option of every command.
- Every key of the example configuration files (commented-out examples included) and of the
  settings models is documented in docs/contracts.md.
- Every HTTP route of the station's and the cloud's apps (built in-process) is listed in
  docs/contracts.md, and every route listed there exists.

The checkers take the text, so a test can show that each one notices a command, an option,
a key or a route taken out of a copy of the docs.
"""

from __future__ import annotations

import re
import tomllib
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
import typer
from pydantic import BaseModel
from starlette.routing import Mount

from cloud_sync.cloud.ledger import CloudLedger
from cloud_sync.cloud.server.app import build_cloud_app
from cloud_sync.cloud.server.settings import CloudSettings
from cloud_sync.core.privacy import MemberKeys
from cloud_sync.core.signing import generate_signing_key
from edge_agent.cli.main import app as cli_app
from edge_agent.services.station import open_station
from edge_agent.settings import StationSettings
from edge_agent.web.app import build_app
from tests.support import make_settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONTRACTS = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
STATION_EXAMPLE = (ROOT / "config" / "station.example.toml").read_text(encoding="utf-8")
CLOUD_EXAMPLE = (ROOT / "config" / "cloud.toml").read_text(encoding="utf-8")

Commands = dict[str, frozenset[str]]  # "edge member add" -> {"--config", "-c", "--phone", …}
Route = tuple[str, str]  # ("GET", "/api/v1/sales")


# --- the command line ----------------------------------------------------------------------


def program_commands() -> Commands:
    """Every leaf command of the `loyalpump` program, with the options it takes."""
    found: dict[str, frozenset[str]] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if children is not None:
            for name, child in children.items():
                walk(child, (*path, name))
            return
        options = {
            option
            for param in command.params
            if param.param_type_name == "option"
            for option in (*param.opts, *param.secondary_opts)
        }
        found[" ".join(path)] = frozenset(options)

    walk(typer.main.get_command(cli_app), ())
    return found


def _groups(commands: Commands) -> set[str]:
    groups = {""}
    for path in commands:
        words = path.split()
        groups.update(" ".join(words[:depth]) for depth in range(1, len(words)))
    return groups


@dataclass(frozen=True)
class Mention:
    text: str  # as the docs show it, e.g. "loyalpump edge redeem -c … --points N [--json]"
    line: int


_FENCE = re.compile(r"^```")
_SPAN = re.compile(r"`([^`]+)`")
_SUBCOMMAND = re.compile(r"^[a-z][a-z-]*(\|[a-z][a-z-]*)*$")
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])(?![\w-])")
_PROGRAM = "loyalpump "
_TOP_LEVEL = ("edge ", "cloud ", "sim ", "demo")


def command_mentions(text: str) -> list[Mention]:
    """Every `loyalpump …` command the text shows: in tables, code blocks and inline code.

    In a table's first cell, `edge …`, `cloud …` and `sim …` beside a `loyalpump …` are
    commands too (`loyalpump edge expire -c …` / `edge recalc-tiers -c …`).
    """
    mentions: list[Mention] = []
    prose: list[tuple[int, str]] = []
    in_code = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line.strip()):
            in_code = not in_code
            continue
        if in_code:
            command = line.split(" #", 1)[0].strip()
            if command.startswith(_PROGRAM):
                mentions.append(Mention(command, number))
            continue
        if line.lstrip().startswith("|"):
            first = line.replace("\\|", "\0").split("|")[1].replace("\0", "|")
            spans = _SPAN.findall(first)
            if any(span.startswith(_PROGRAM) for span in spans):
                for span in spans:
                    if span.startswith(_TOP_LEVEL):
                        mentions.append(Mention(_PROGRAM + span, number))
                    elif span.startswith(_PROGRAM):
                        mentions.append(Mention(span, number))
                continue
        prose.append((number, line))
    # inline code in prose may wrap onto the next line
    joined = "\n".join(line for _, line in prose)
    numbers = [number for number, _ in prose]
    for match in _SPAN.finditer(joined):
        span = " ".join(match.group(1).split())
        if span.startswith(_PROGRAM):
            mentions.append(Mention(span, numbers[joined.count("\n", 0, match.start())]))
    return mentions


def _resolve(mention: Mention, commands: Commands) -> tuple[list[str], list[str]]:
    """(the leaf commands a mention names, its problems); a group alone names none."""
    groups = _groups(commands)
    paths = [""]
    for word in mention.text.split()[1:]:
        if not all(path in groups for path in paths) or not _SUBCOMMAND.match(word):
            break
        extended = [f"{path} {choice}".strip() for path in paths for choice in word.split("|")]
        unknown = [path for path in extended if path not in commands and path not in groups]
        if unknown:
            where = f"line {mention.line}: `{mention.text}`"
            return [], [f"{where}: no command `loyalpump {path}`" for path in unknown]
        paths = extended
    leaves = [path for path in paths if path in commands]
    if not leaves:
        return [], []
    problems = [
        f"line {mention.line}: `{mention.text}`: `loyalpump {path}` has no option {option}"
        for option in _OPTION.findall(mention.text)
        for path in leaves
        if option not in commands[path]
    ]
    return leaves, problems


def command_problems(text: str, commands: Commands) -> list[str]:
    """Commands the text shows that the program lacks, and options those commands lack."""
    problems: list[str] = []
    for mention in command_mentions(text):
        problems += _resolve(mention, commands)[1]
    return problems


def missing_commands(text: str, commands: Commands) -> list[str]:
    """The program's commands the text never shows."""
    shown = {leaf for mention in command_mentions(text) for leaf in _resolve(mention, commands)[0]}
    return sorted(f"loyalpump {path}" for path in commands if path not in shown)


def missing_options(text: str, commands: Commands) -> list[str]:
    """Options of the program's commands that no mention of the command shows."""
    shown: dict[str, set[str]] = {path: set() for path in commands}
    for mention in command_mentions(text):
        for leaf in _resolve(mention, commands)[0]:
            shown[leaf].update(_OPTION.findall(mention.text))
    program = typer.main.get_command(cli_app)
    problems = []
    for path in commands:
        command: Any = program
        for word in path.split():
            command = command.commands[word]
        for param in command.params:
            names = (*param.opts, *param.secondary_opts)
            if param.param_type_name == "option" and not shown[path] & set(names):
                problems.append(f"loyalpump {path}: {names[0]} is not shown")
    return problems


# --- configuration -------------------------------------------------------------------------

_KEY = re.compile(r"^[a-z_][a-z0-9_]*$")
_COMMENTED_TOML = re.compile(r"^#\s?(\[[\w.-]+\]|[a-z_][a-z0-9_]*\s*=.*)$")


def _flatten(value: object, key: str) -> Iterator[str]:
    if isinstance(value, dict):
        if value and not any(_KEY.match(name) for name in value):
            if all(isinstance(inner, dict) for inner in value.values()):  # tables by id
                for inner in value.values():
                    yield from _flatten(inner, f"{key}.<id>")
            else:  # a map of data, e.g. nozzle -> grade
                yield key
            return
        for name, inner in value.items():
            yield from _flatten(inner, f"{key}.{name}" if key else name)
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for item in value:
            yield from _flatten(item, f"{key}[]")
    else:
        yield key


def example_keys(toml_text: str) -> set[str]:
    """Every key of an example file as a dotted path (`drivers[].pumps[].address`,
    `trust.stations.<id>.adjust_max_points`), commented-out example keys included."""
    lines = []
    for line in toml_text.splitlines():
        commented = _COMMENTED_TOML.match(line.strip())
        lines.append(commented.group(1) if commented else line)
    return set(_flatten(tomllib.loads("\n".join(lines)), ""))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models_in(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [model for arg in get_args(annotation) for model in _models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key a settings model accepts, spelt as `example_keys` spells them."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        annotation = field.annotation
        origin = get_origin(annotation)
        args = get_args(annotation)
        if origin is list and _models_in(args[0]):
            inner, key = _models_in(args[0]), f"{key}[]"
        elif origin is dict and _models_in(args[1]):
            inner, key = _models_in(args[1]), f"{key}.<id>"
        else:
            inner = _models_in(annotation)
        if not inner:
            keys.add(key)
        for sub in inner:
            keys |= model_keys(sub, key)
    return keys


def missing_keys(text: str, keys: Iterable[str]) -> list[str]:
    """Keys the text never names as `dotted.key`."""
    return sorted(key for key in keys if f"`{key}`" not in text)


# --- HTTP ----------------------------------------------------------------------------------

_METHODS = "GET|POST|PUT|PATCH|DELETE"
_ROUTE = re.compile(rf"\b((?:{_METHODS})(?:\|(?:{_METHODS}))*) (/[^\s`?|)\\]*)")


def app_routes(routes: Sequence[Any], prefix: str = "") -> set[Route]:
    """(method, path template) for every route of an app, included routers walked."""
    found: set[Route] = set()
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI includes routers lazily
        if included is not None:
            found |= app_routes(included.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount):
            found.add(("GET", f"{prefix}{route.path}/{{path}}"))
        else:
            for method in set(route.methods) - {"HEAD"}:
                found.add((method, prefix + route.path))
    return found


def documented_routes(text: str) -> set[Route]:
    return {
        (method, path) for methods, path in _ROUTE.findall(text) for method in methods.split("|")
    }


def missing_routes(text: str, routes: Iterable[Route]) -> list[str]:
    shown = documented_routes(text)
    return sorted(f"{method} {path}" for method, path in routes if (method, path) not in shown)


def section(text: str, title: str) -> str:
    """The text under the `## …` heading that contains `title`, up to the next one."""
    match = re.search(rf"^## [^\n]*{re.escape(title)}[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match is not None, f"no section {title!r}"
    return match.group(1)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def commands() -> Commands:
    return program_commands()


@pytest.fixture(scope="module")
def station_routes(tmp_path_factory: pytest.TempPathFactory) -> set[Route]:
    data = tmp_path_factory.mktemp("docs-station") / "data"
    with open_station(make_settings(data), create=True) as station:
        return app_routes(build_app(station).routes)


@pytest.fixture(scope="module")
def cloud_routes(tmp_path_factory: pytest.TempPathFactory) -> set[Route]:
    folder = tmp_path_factory.mktemp("docs-cloud")
    keys = MemberKeys.generate("chain-docs")
    settings = CloudSettings.model_validate(
        {"cloud": {"data_dir": str(folder / "cloud"), "admin_token": "docs-admin-token-0123456789"}}
    )
    ledger = CloudLedger.open(f"sqlite:///{folder / 'cloud.sqlite3'}", chain_keys=keys)
    try:
        app = build_cloud_app(
            settings, ledger=ledger, signing_key=generate_signing_key(), chain_keys=keys
        )
        return app_routes(app.routes)
    finally:
        ledger.close()


# --- the docs against the code -------------------------------------------------------------


@pytest.mark.parametrize("name", ["README.md", "docs/contracts.md"])
def test_every_command_shown_exists_with_the_options_shown(name: str, commands: Commands) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    assert command_mentions(text), f"{name} shows no command"
    assert command_problems(text, commands) == []


@pytest.mark.parametrize("name", ["README.md", "docs/contracts.md"])
def test_every_command_of_the_program_is_in_the_docs(name: str, commands: Commands) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    assert missing_commands(text, commands) == []


def test_the_contracts_show_every_option_of_every_command(commands: Commands) -> None:
    assert missing_options(section(CONTRACTS, "Command line"), commands) == []


@pytest.mark.parametrize(
    ("example", "model", "title"),
    [
        (STATION_EXAMPLE, StationSettings, "Station configuration"),
        (CLOUD_EXAMPLE, CloudSettings, "Cloud configuration"),
    ],
    ids=["station.toml", "cloud.toml"],
)
def test_every_config_key_is_documented(example: str, model: type[BaseModel], title: str) -> None:
    documented = section(CONTRACTS, title)
    assert missing_keys(documented, example_keys(example)) == []
    assert missing_keys(documented, model_keys(model)) == []
    assert example_keys(example) <= model_keys(model), "the example has keys the model refuses"


def test_the_examples_commented_out_keys_count() -> None:
    assert {"web.tls_cert", "web.tls_key"} <= example_keys(STATION_EXAMPLE)
    assert {
        "cloud.admin_token_file",
        "trust.stations.<id>.adjust_max_points",
        "trust.stations.<id>.adjust_daily_points",
    } <= example_keys(CLOUD_EXAMPLE)


def test_every_station_route_is_documented(station_routes: set[Route]) -> None:
    documented = section(CONTRACTS, "HTTP: the station")
    assert missing_routes(documented, station_routes) == []
    assert sorted(documented_routes(documented) - station_routes) == [], "documented, not served"


def test_every_cloud_route_is_documented(cloud_routes: set[Route]) -> None:
    documented = (
        section(CONTRACTS, "HTTP: the cloud")
        + section(CONTRACTS, "The HQ console")
        + section(CONTRACTS, "The member app")
    )
    assert missing_routes(documented, cloud_routes) == []
    assert sorted(documented_routes(documented) - cloud_routes) == [], "documented, not served"


def test_the_readme_links_the_contracts() -> None:
    assert "(docs/contracts.md)" in README


def test_the_docs_cite_nothing_outside_the_repository() -> None:
    texts = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
    for path in texts:
        text = path.read_text(encoding="utf-8")
        assert "../shared" not in text, path
        assert not re.search(r"(?<![\w/])shared/", text), path
        for target in re.findall(r"\]\(([^)#]+)", text):
            if not target.startswith(("http://", "https://", "mailto:")):
                assert (path.parent / target).exists(), f"{path.name}: link to {target}"


# --- the checkers notice what goes missing -------------------------------------------------


def _without(text: str, needle: str) -> str:
    kept = [line for line in text.splitlines() if needle not in line]
    assert len(kept) < len(text.splitlines()), needle
    return "\n".join(kept)


def test_a_command_taken_out_of_the_readme_is_reported(commands: Commands) -> None:
    assert missing_commands(_without(README, "loyalpump edge settle"), commands) == [
        "loyalpump edge settle"
    ]
    assert "loyalpump cloud review approve" in missing_commands(
        _without(README, "review approve|decline"), commands
    )


def test_a_wrong_command_or_option_in_the_readme_is_reported(commands: Commands) -> None:
    renamed = README.replace("--new-plate X", "--plate-new X")
    assert any("--plate-new" in problem for problem in command_problems(renamed, commands))
    renamed = README.replace("loyalpump edge settle", "loyalpump edge settled")
    assert any("edge settled" in problem for problem in command_problems(renamed, commands))


def test_an_option_taken_out_of_the_contracts_is_reported(commands: Commands) -> None:
    text = section(CONTRACTS, "Command line").replace("[--unit-price P] ", "")
    assert missing_options(text, commands) == ["loyalpump edge sale add: --unit-price is not shown"]


def test_a_route_taken_out_of_the_contracts_is_reported(
    station_routes: set[Route], cloud_routes: set[Route]
) -> None:
    station = _without(section(CONTRACTS, "HTTP: the station"), "`POST /api/v1/redemptions`")
    assert missing_routes(station, station_routes) == ["POST /api/v1/redemptions"]
    cloud = (
        _without(section(CONTRACTS, "HTTP: the cloud"), "/decision`")
        + section(CONTRACTS, "The HQ console")
        + section(CONTRACTS, "The member app")
    )
    assert missing_routes(cloud, cloud_routes) == ["POST /api/v1/adjustments/{event_id}/decision"]


def test_a_config_key_taken_out_of_the_contracts_is_reported() -> None:
    documented = _without(section(CONTRACTS, "Station configuration"), "`web.trusted_proxies`")
    assert missing_keys(documented, example_keys(STATION_EXAMPLE)) == ["web.trusted_proxies"]
    documented = _without(section(CONTRACTS, "Cloud configuration"), "stations.<id>.adjust_max")
    assert missing_keys(documented, example_keys(CLOUD_EXAMPLE)) == [
        "trust.stations.<id>.adjust_max_points"
    ]


# --- the changelog -------------------------------------------------------------------------

_KINDS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def changelog_problems(text: str, version: str) -> list[str]:
    """Where CHANGELOG.md leaves Keep a Changelog 1.1.0: `## [Unreleased]` first, then
    `## [X.Y.Z] - YYYY-MM-DD`, newest first, the newest the project's version, and only the
    six kinds of change as `###` sections."""
    problems = []
    releases = re.findall(r"^## (.*)$", text, re.M)
    if not releases or releases[0] != "[Unreleased]":
        problems.append("the first section is not ## [Unreleased]")
    found = []
    for heading in releases[1:]:
        match = re.fullmatch(r"\[(\d+)\.(\d+)\.(\d+)\] - (\d{4}-\d{2}-\d{2})", heading)
        if match is None:
            problems.append(f"## {heading}: not [X.Y.Z] - YYYY-MM-DD")
            continue
        found.append((tuple(int(part) for part in match.groups()[:3]), match.group(4)))
    if found != sorted(found, reverse=True):
        problems.append("releases are not newest first")
    if found and ".".join(map(str, found[0][0])) != version:
        problems.append(f"the newest release is not the project's version {version}")
    problems += [
        f"### {kind}: not a Keep a Changelog kind"
        for kind in re.findall(r"^### (.*)$", text, re.M)
        if kind not in _KINDS
    ]
    return problems


def test_the_changelog_keeps_a_changelog() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert changelog_problems(text, version["version"]) == []
    undated = text.replace("## [0.6.0] - 2026-11-24", "## 0.6.0 (2026-11-24)")
    assert changelog_problems(undated, "0.7.0") == [
        "## 0.6.0 (2026-11-24): not [X.Y.Z] - YYYY-MM-DD"
    ]
    assert changelog_problems(text.replace("### Fixed", "### Repaired", 1), "0.7.0") == [
        "### Repaired: not a Keep a Changelog kind"
    ]
    assert changelog_problems(text.replace("## [Unreleased]", "## Unreleased"), "0.7.0") == [
        "the first section is not ## [Unreleased]"
    ]
