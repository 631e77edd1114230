"""Reading `journeymap.yml`: YAML errors and validation errors both name the file, the key and the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from journeymap.errors import DefinitionError
from journeymap.ingest.store import DEFINITION_FILE, StoreSettings, store_settings
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.settings import ServerConfig, StoreConfig
from journeymap.journey.playbooks import ACTION_KINDS

__all__ = ["DefinitionError", "json_schema", "load_definition", "parse_definition", "parse_text", "problems",
           "server_config_for", "store_settings_for"]


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
"""libyaml's safe loader, when PyYAML was built with it: about 8x faster on the demo's journeymap.yml (4.7 against
39 ms), which every refresh and every open of a workspace reads."""


def read_yaml(text: str) -> Any:
    """`yaml.safe_load(text)`, through libyaml when there is one. A text libyaml rejects is read again by PyYAML's own
    loader, whose error (raised, or a result, should it accept the text) is the one users get everywhere."""
    if _FAST_LOADER is not None:
        try:
            return yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 (a safe loader)
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def parse_definition(data: Any, path: str = "journeymap.yml") -> JourneyDefinition:
    if not isinstance(data, dict):
        raise DefinitionError(path, [("(top level)", "expected a mapping of keys such as stages, touchpoints")])
    try:
        definition = JourneyDefinition.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            # Drop pydantic's union/validator plumbing from the location; keep the user's keys.
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function"))))
            # a discriminated union (a playbook's actions) puts its tag in the location: not the user's key
            loc = tuple(p for i, p in enumerate(loc) if not (i >= 2 and loc[i - 2] == "actions"
                                                              and isinstance(loc[i - 1], int) and p in ACTION_KINDS))
            msg = err["msg"].removeprefix("Value error, ")
            problems.append((_key_path(loc), msg))
        raise DefinitionError(path, problems) from None
    out_of_range = definition.value_problems()
    if out_of_range:
        raise DefinitionError(path, out_of_range)
    return definition


def parse_text(text: str, path: str = "journeymap.yml") -> JourneyDefinition:
    """A definition from YAML text; DefinitionError names the line and column of a YAML error, or each key.

    >>> parse_text("stages: [").name
    Traceback (most recent call last):
    ...
    journeymap.errors.DefinitionError: journeymap.yml is not a valid journey definition:
      line 1, column 10: expected the node content, but found '<stream end>'
    """
    try:
        data = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise DefinitionError(path, [(where, str(getattr(exc, "problem", None) or exc))]) from None
    except RecursionError:
        raise DefinitionError(path, [("(file)", "nested too deeply")]) from None
    try:
        return parse_definition(data, path)
    except RecursionError:
        raise DefinitionError(path, [("(file)", "nested too deeply")]) from None


def problems(text: str) -> list[dict]:
    """The one formatter of a definition's problems, for every surface: `[{"key", "message"}]`, empty when valid.

    >>> problems("stages: 3")[0]["key"]
    'stages'
    """
    try:
        parse_text(text)
    except DefinitionError as exc:
        return [{"key": k, "message": m} for k, m in exc.problems]
    return []


def load_definition(path: str | Path) -> JourneyDefinition:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DefinitionError(str(path), [("(file)", "not found; run `journeymap init DIR` to create one")]) from None
    return parse_text(text, str(path))


def store_settings_for(workspace: str | Path) -> StoreSettings:
    """The settings the workspace's store opens with (docs/store.md): its journeymap.yml `store:` section,
    then the JOURNEYMAP_* environment variables. Pass them to `open_store`, which reads no journeymap.yml."""
    return store_settings(workspace, _store_section(Path(workspace) / DEFINITION_FILE))


def server_config_for(workspace: str | Path) -> ServerConfig:
    """The `server:` section of the workspace's journeymap.yml, validated (defaults without the file or
    the section); like `store:`, it is read alone, so the server starts whatever else the file says."""
    return ServerConfig.model_validate(_section(Path(workspace) / DEFINITION_FILE, "server", ServerConfig))


def _store_section(path: Path) -> dict:
    """The `store:` section of journeymap.yml, validated; {} without the file or the section."""
    return _section(path, "store", StoreConfig)


def _section(path: Path, name: str, model: type[BaseModel]) -> dict:
    """One section of journeymap.yml, validated by `model` (None keys left out); {} without the file or the section.

    Only this section is validated here, so a store opens (and a server starts) whatever else the file says
    (the rest is checked where the definition is used); a file that is not YAML raises its DefinitionError,
    and a bad value one whose key path starts with `name` (`server.cors_origins[1]`)."""
    if not path.exists():
        return {}
    try:
        data = read_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        load_definition(path)  # raises the DefinitionError that names the line and column
        raise
    section = data.get(name) if isinstance(data, dict) else None
    if section is None:
        return {}
    try:
        return model.model_validate(section).model_dump(exclude_none=True)
    except ValidationError as exc:
        problems = [(name + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]),
                     err["msg"].removeprefix("Value error, ")) for err in exc.errors()]
        raise DefinitionError(str(path), problems) from None


def json_schema() -> str:
    """The JSON Schema of `journeymap.yml`, for editors and CI checks."""
    return json.dumps(JourneyDefinition.model_json_schema(), indent=2)
