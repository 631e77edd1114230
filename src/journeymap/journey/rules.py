"""Event predicates: the small rule language used by stages, touchpoints, milestones and surveys.

A rule matches one event. Every key that is given must hold (AND); ``any`` adds an OR of sub-rules.

    event: signup_completed            # or a list of names
    source: product                    # or a list
    channel: web                       # or a list
    where:                             # conditions on properties (dotted paths allowed)
      plan: pro                        # equality
      seats: {gte: 5}                  # operators: eq ne in not_in gt gte lt lte exists contains
    any: [{event: a}, {event: b}]
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "contains")


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class Condition(BaseModel):
    """One condition on a property path. Exactly one operator is set."""

    model_config = ConfigDict(extra="forbid")

    eq: Any = None
    ne: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    exists: bool | None = None
    contains: str | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [op for op in OPERATORS if getattr(self, "in_" if op == "in" else op) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a condition needs exactly one operator of {', '.join(OPERATORS)}; got {given or 'none'}"
            )
        return self

    @property
    def operator(self) -> tuple[str, Any]:
        for op in OPERATORS:
            value = getattr(self, "in_" if op == "in" else op)
            if value is not None:
                return op, value
        raise AssertionError("validated to have one operator")


class Rule(BaseModel):
    """A predicate on one event. Empty rules are refused: they would match everything by accident."""

    model_config = ConfigDict(extra="forbid")

    event: list[str] | None = None
    source: list[str] | None = None
    channel: list[str] | None = None
    where: dict[str, Condition] = Field(default_factory=dict)
    any: list[Rule] | None = None

    @field_validator("event", "source", "channel", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> list[str] | None:
        return _as_list(value)

    @field_validator("where", mode="before")
    @classmethod
    def _wrap_scalars(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: (v if isinstance(v, dict) else {"eq": v}) for k, v in value.items()}

    @model_validator(mode="after")
    def _not_empty(self) -> Rule:
        if not (self.event or self.source or self.channel or self.where or self.any):
            raise ValueError("a rule needs at least one of event, source, channel, where, any")
        return self

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `entry: signup_completed` is shorthand for `entry: {event: signup_completed}`.
        if isinstance(value, str | list):
            return {"event": value}
        return value

    def property_paths(self) -> set[str]:
        """Every property path this rule reads; the engine extracts each once."""
        paths = set(self.where)
        for sub in self.any or []:
            paths |= sub.property_paths()
        return paths
