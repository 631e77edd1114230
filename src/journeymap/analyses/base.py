"""What an analysis is: a name, a parameter model, the function that runs it on a workspace, its output.

Every surface reads the same `Analysis`: the CLI builds its command from `params` (one flag per field,
`--` + the field's alias or name), the JSON API its query parameters and OpenAPI, the web app its form.
So an option's type, default, bounds, help and the error for a bad value are written once, here.

>>> class P(Params):
...     window: Duration = Field("14d", description="Conversion window.")
...     top: int = Field(20, ge=0, description="Rows.")
>>> P.model_validate({"top": "5"}).top
5
>>> try:
...     validate(P, {"window": "soon"})
... except OptionError as exc:
...     print(exc)
--window: 'soon' is not a duration: write a number and one of s, m, h, d, w (e.g. '14d')
>>> try:
...     validate(P, {"top": "-1"})
... except OptionError as exc:
...     print(exc)
--top must be at least 0, not '-1'
"""

from __future__ import annotations

import datetime as dt
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from journeymap.errors import NotEnoughData, OptionError, did_you_mean
from journeymap.insights.map.jsonsafe import finite
from journeymap.journey.durations import parse_duration

if TYPE_CHECKING:
    from journeymap.workspace import Workspace

__all__ = [
    "Analysis", "Day", "Duration", "Field", "MAX_DAYS", "MAX_INT", "Option", "Output", "PERIOD_WARNINGS_HELP", "Params",
    "RowsView", "Unit", "UnitField", "WARNINGS_HELP", "choices", "commas", "days", "finite", "flag", "options",
    "to_json", "unit_of", "validate",
]

MAX_INT = 1_000_000_000  # counts and offsets: larger values mean nothing and overflow SQL integers
MAX_DAYS = 36_500  # durations and bracket days: a century; the engines' date arithmetic overflows far beyond
MIN_YEAR, MAX_YEAR = 1900, 2200

Progress = Callable[[str, float | None], None]
"""progress(message, fraction done or None): what a slow analysis reports while it runs."""


class Params(BaseModel):
    """Base of every analysis's parameters: unknown options are errors, values are read by name or alias."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)


# -- value types shared by analyses -------------------------------------------------------------------------


def _duration(text: str) -> str:
    seconds = parse_duration(text)  # its ValueError says how to write one
    if seconds < 0:
        raise ValueError("must not be negative")
    if seconds > MAX_DAYS * 86400:
        raise ValueError(f"must be at most {MAX_DAYS}d")
    return text.strip()


def _day(text: str | dt.date | None) -> str | None:
    if text is None:
        return None
    if isinstance(text, dt.date):  # dt.datetime too: the Python API passes dates
        text = text.isoformat()
    try:
        day = dt.date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise ValueError(f"{text!r} is not a date (write YYYY-MM-DD)") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ValueError(f"{text!r} is out of range: years {MIN_YEAR} to {MAX_YEAR}")
    return day.isoformat()


Duration = Annotated[str, AfterValidator(_duration)]
"""A duration as written (`14d`, `12h`, `90m`), checked to parse and to lie within a century."""
Day = Annotated[str | dt.date | None, AfterValidator(_day)]
"""A calendar day, YYYY-MM-DD (a longer ISO timestamp is cut to its day)."""
Unit = Literal["person", "account"]


def _split(value: Any) -> Any:
    if value is None:
        return []
    out = []
    for item in [value] if isinstance(value, str | int) else value:
        out += [p.strip() for p in item.split(",") if p.strip()] if isinstance(item, str) else [item]
    return out


def commas(item: type) -> Any:
    """A repeatable option whose values may also be given comma-separated (`--optional 1 --optional 2`,
    `optional=1,2`, or one text field in the web app's form)."""
    return Annotated[list[item], BeforeValidator(_split)]


def UnitField() -> Any:  # noqa: N802 - reads as a type in a model
    """The unit of analysis, the same option with the same default for every analysis that has one."""
    return Field(None, description="Unit of analysis: person or account (default: the definition's analysis.level, "
                                    "else person).")


def days(text: str) -> float:
    """A validated Duration in days."""
    return parse_duration(text) / 86400


def unit_of(ws: Workspace, by: str | None) -> str:
    """The one rule for the default unit of analysis: the option, else the definition's `analysis.level`,
    else person (a workspace without journeymap.yml)."""
    if by:
        return by
    return ws.definition.analysis.level if ws.definition_path.exists() else "person"


# -- reading a parameter model ---------------------------------------------------------------------------


def choices(annotation: Any) -> tuple | None:
    """The allowed values of a Literal (possibly inside `| None`, a list or Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType, list, Annotated):
        for arg in typing.get_args(annotation):
            found = choices(arg)
            if found:
                return found
    return None


def _bare(annotation: Any) -> Any:
    """`X` from `X | None` and `Annotated[X, ...]`."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


SURFACES = ("cli", "api", "web", "python")


@dataclass(frozen=True)
class Option:
    """One option as every surface shows it."""

    name: str  # the field name (Python)
    key: str  # the query parameter (the alias when there is one)
    flag: str  # the CLI flag
    kind: str  # text, int, float, bool, choice, list
    default: Any
    required: bool
    help: str
    choices: tuple | None = None
    ge: float | None = None
    le: float | None = None
    surfaces: tuple[str, ...] = SURFACES  # where it is offered: a file path is the CLI's and Python's only
    positional: bool = False  # the CLI takes it as an argument (`journeymap experiment NAME`), not a flag

    def as_dict(self) -> dict:
        return {"name": self.key, "flag": self.flag, "kind": self.kind, "default": self.default, "required": self.required,
                "help": self.help, "choices": list(self.choices) if self.choices else None, "min": self.ge, "max": self.le}


def flag(name: str, info: FieldInfo) -> str:
    return "--" + (info.alias or name).replace("_", "-")


def _kind(annotation: Any) -> str:
    bare = _bare(annotation)
    if typing.get_origin(bare) is list:
        return "list"
    if choices(annotation):
        return "choice"
    return {bool: "bool", int: "int", float: "float"}.get(bare, "text")


def options(model: type[Params], surface: str | None = None) -> tuple[Option, ...]:
    """The model's options as every surface shows them; with `surface`, those it offers
    (`Field(..., json_schema_extra={"surfaces": [...]})` narrows an option to some)."""
    out = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra or {}
        surfaces = tuple(extra.get("surfaces", SURFACES))
        if surface is not None and surface not in surfaces:
            continue
        ge = le = None
        for m in info.metadata:
            ge = getattr(m, "ge", ge)
            le = getattr(m, "le", le)
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        out.append(Option(name=name, key=info.alias or name, flag=flag(name, info), kind=_kind(info.annotation),
                          default=list(default) if isinstance(default, tuple) else default, required=info.is_required(),
                          help=info.description or "", choices=choices(info.annotation), ge=ge, le=le,
                          surfaces=surfaces, positional=bool(extra.get("positional"))))
    return tuple(out)


# -- errors as one line, the same on every surface ---------------------------------------------------------


_RELATION = {"greater_than_equal": "at least", "greater_than": "more than", "less_than_equal": "at most",
             "less_than": "less than"}


def describe(model: type[Params], errors: list[dict]) -> tuple[str, str | None]:
    """One line for pydantic's errors on `model` (the first option named), worded as the CLI writes options."""
    messages, first = [], None
    by_key = {(info.alias or name): (name, info) for name, info in model.model_fields.items()}
    by_key.update({name: (name, info) for name, info in model.model_fields.items()})
    for e in errors:
        loc = [p for p in e.get("loc", ()) if p not in ("query", "body")]
        kind, value = e.get("type", ""), e.get("input")
        if not loc or loc[0] not in by_key:
            if kind == "extra_forbidden" and loc:
                given, known = "--" + str(loc[0]).replace("_", "-"), [o.flag for o in options(model)]
                hint = did_you_mean(given, known, n=2, quote=str) or f"options: {', '.join(known) or 'none'}"
                messages.append(f"no option {given} ({hint})")
            else:
                messages.append(str(e.get("msg", "invalid value")).removeprefix("Value error, "))
            continue
        name, info = by_key[loc[0]]
        first = first or name
        option = flag(name, info)
        allowed = choices(info.annotation)
        if kind == "missing":
            messages.append(f"{option} is required")
        elif allowed and kind in ("literal_error", "enum"):
            shown = value if not isinstance(value, list) else value[0]
            if set(allowed) == {"person", "account"}:
                messages.append(f"{option} must be person or account, not {shown!r}")
            else:
                messages.append(f"{option} must be one of {', '.join(map(str, allowed))}, not {shown!r}")
        elif kind.startswith("int"):
            messages.append(f"{option} must be a whole number, not {value!r}")
        elif kind.startswith("float"):
            messages.append(f"{option} must be a number, not {value!r}")
        elif kind in _RELATION:
            bound = next(iter((e.get("ctx") or {}).values()), "?")
            messages.append(f"{option} must be {_RELATION[kind]} {bound}, not {value!r}")
        elif kind.startswith("bool"):
            messages.append(f"{option} must be true or false, not {value!r}")
        else:
            msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
            if msg.startswith("--"):
                messages.append(msg)
            else:  # "--horizon must be at least 1d"; "--window: '2x' is not a duration: ..."
                messages.append(f"{option} {msg}" if msg.startswith(("must ", "is ")) else f"{option}: {msg}")
    return "; ".join(messages) or "invalid options", first


def validate(model: type[Params], raw: Mapping[str, Any]) -> Params:
    """Parameters from raw values (CLI strings, query strings or Python values); OptionError when one is bad."""
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        message, option = describe(model, list(exc.errors()))
        raise OptionError(message, option=option) from None


class RowsView(Params):
    """The view option of analyses printed as one long table."""

    rows: int = Field(20, ge=0, le=MAX_INT, description="Rows to show in the table (0: all; JSON has all).")


def _json_default(x: Any) -> Any:
    if isinstance(x, dt.datetime | dt.date):
        return x.isoformat()
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    return str(x)


def to_json(data: Any, indent: int | None = None) -> str:
    """The one JSON encoding of results, for the CLI's --json and the server: ISO dates, NaN as null.

    >>> to_json({"at": dt.date(2026, 1, 2), "x": float("nan")})
    '{"at": "2026-01-02", "x": null}'
    """
    separators = None if indent else (", ", ": ")
    return json.dumps(finite(data), default=_json_default, allow_nan=False, indent=indent, ensure_ascii=False,
                      separators=separators)


# -- the analysis ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """One analysis, described once.

    `run(ws, params, progress)` returns the JSON-ready result (`output` names its top-level keys and their
    meaning); `example` holds options that make a required-option analysis runnable on the demo, for docs
    and for the parity test; `unit` says how the unit of analysis is chosen: "by" (the `by` option),
    or a fixed "account" for analyses of paying accounts."""

    name: str
    summary: str
    params: type[Params]
    run: Callable[..., dict]
    output: type[BaseModel]
    doc: str
    unit: str = "by"
    example: dict = field(default_factory=dict)
    needs_definition: bool = True
    slow: bool = False  # fits a model or scores text: the surfaces show progress and cache the result
    view: type[Params] | None = None  # options that only change how a table shows the result (JSON has all)

    @property
    def options(self) -> tuple[Option, ...]:
        return options(self.params)

    def validate(self, raw: Mapping[str, Any]) -> Params:
        return validate(self.params, raw)

    def __call__(self, ws: Workspace, params: Params | Mapping[str, Any] | None = None,
                 progress: Progress | None = None) -> dict:
        """Run on a workspace: validated parameters (or raw options) in, a JSON-ready result out."""
        if not isinstance(params, Params):
            params = self.validate(params or {})
        periodic = "date_from" in type(params).model_fields  # each of those has `warnings` (test_registry)
        try:
            result = finite(self.run(ws, params, progress))
        except NotEnoughData as exc:  # an analysis that cannot answer an empty period says why it is empty
            said = _period_warnings(ws, params) if periodic else []
            if said:
                raise NotEnoughData(f"{exc.reason} ({said[0]['message']}: {said[0]['suggestion']})", exc.add) from exc
            raise
        if periodic:
            result["warnings"] = [*result.get("warnings", []), *_period_warnings(ws, params)]
        return result


def _period_warnings(ws: Workspace, params: Params) -> list[dict]:
    """A --from/--to in which no event occurs, said with the days the data covers, on every surface."""
    from journeymap.engine.checks import period_findings

    date_from, date_to = params.date_from, params.date_to
    if (date_from is None and date_to is None) or not ws.has_events():
        return []
    return warnings_of(period_findings(ws.engine, date_from, date_to))


class Output(BaseModel):
    """Base of output schemas: the top-level keys an analysis returns, each documented; nested values
    are described in the analysis's doc page."""

    model_config = ConfigDict(extra="forbid")


WARNINGS_HELP = ("Names given that never occur in the data, and a --from/--to in which no event occurs: each {key, "
                 "message, suggestion}, the suggestion naming the closest names that occur or the days the data covers.")
PERIOD_WARNINGS_HELP = ("A --from/--to in which no event occurs: {key, message, suggestion}, the suggestion naming the "
                        "days the data covers.")


def warnings_of(findings) -> list[dict]:
    """engine.checks findings as the `warnings` of an analysis's output."""
    return [f.as_dict() for f in findings]
