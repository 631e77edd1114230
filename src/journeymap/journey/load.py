"""Reading `journeymap.yml`: YAML errors and validation errors both name the file, the key and the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from journeymap.errors import DefinitionError
from journeymap.journey.definition import JourneyDefinition

__all__ = ["DefinitionError", "json_schema", "load_definition", "parse_definition"]



def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_definition(data: Any, path: str = "journeymap.yml") -> JourneyDefinition:
    if not isinstance(data, dict):
        raise DefinitionError(path, [("(top level)", "expected a mapping of keys such as stages, touchpoints")])
    try:
        return JourneyDefinition.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            # Drop pydantic's union/validator plumbing from the location; keep the user's keys.
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function"))))
            msg = err["msg"].removeprefix("Value error, ")
            problems.append((_key_path(loc), msg))
        raise DefinitionError(path, problems) from None


def load_definition(path: str | Path) -> JourneyDefinition:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DefinitionError(str(path), [("(file)", "not found; run `journeymap init DIR` to create one")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise DefinitionError(str(path), [(where, str(getattr(exc, "problem", exc)))]) from None
    return parse_definition(data, str(path))


def json_schema() -> str:
    """The JSON Schema of `journeymap.yml`, for editors and CI checks."""
    return json.dumps(JourneyDefinition.model_json_schema(), indent=2)
