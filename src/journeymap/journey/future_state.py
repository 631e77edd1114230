"""The designed journey: `future_state:` in journeymap.yml (docs/metrics/conformance.md).

A design is an ordered list of items. An item is a step (one event rule, touchpoint or stage), an
any-order group (`any_order: [steps]`: all of them, in any order among themselves) or an exclusive choice
(`one_of: [steps]`: exactly one of them). Steps may be optional, may be allowed to repeat, and may carry
a time budget (`within: 3d`, counted from the journey's start or from an earlier step named by `since`).
The design as a whole may carry an end-to-end budget and an allowlist of deviations the team accepts.

    future_state:
      steps:
        - {id: signup, event: trial_started}
        - one_of:
            - {id: self_serve, touchpoint: setup_checklist}
            - {id: sales_assisted, touchpoint: demo_request}
          id: route
        - any_order:
            - {id: connect, touchpoint: integration_setup}
            - {id: invite, touchpoint: team_invite, optional: true}
        - {id: first_dashboard, event: dashboard_shared, within: 3d, since: signup}
      within: 30d
      allow: [{deviation: repeated, step: invite}]
      personas:
        enterprise: {within: 60d}          # unset keys are the default design's

The models only check the design's own shape; `JourneyDefinition` checks that the touchpoints, stages
and personas it names exist, and `journeymap validate` that its event names occur in the data.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from journeymap.journey.durations import parse_duration
from journeymap.journey.rules import Rule

DEVIATIONS = ("missing", "out_of_order", "repeated", "exclusive_choice", "over_budget")
"""The deviation types, in the order they are reported."""

END_TO_END = "end_to_end"
"""The `step` of the end-to-end budget's over_budget deviation (and of an allowlist entry for it)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = list(cls.model_fields)
            for key in data:
                if key not in known:
                    near = difflib.get_close_matches(str(key), known, n=1)
                    raise ValueError(f"unknown key {key!r}" + (f"; did you mean {near[0]!r}?" if near
                                                                else f" (keys: {', '.join(known)})"))
        return data


def _duration(value: str | None) -> str | None:
    if value is not None and parse_duration(value) <= 0:
        raise ValueError(f"{value!r} must be longer than 0 (e.g. '3d')")
    return value


def _id(value: str) -> str:
    if not re.match(r"^[a-z][a-z0-9_]*$", value):
        raise ValueError(f"{value!r} is not a valid id: use lower-case letters, digits and _, starting with a letter")
    return value


class DesignStep(_Strict):
    """One designed step: what counts as doing it (exactly one of event, match, touchpoint, stage)."""

    id: str = Field(description="The step's id, unique in its design; deviations name it.")
    name: str | None = None
    event: list[str] | None = Field(None, description="Event name(s): shorthand for match: {event: ...}.")
    match: Rule | None = Field(None, description="An event rule (the rule language of stages and touchpoints).")
    touchpoint: str | None = Field(None, description="A touchpoint id: an event with this touchpoint.")
    stage: str | None = Field(None, description="A stage id: an event that enters this stage (its entry rule).")
    optional: bool = Field(False, description="Leaving it out is not a deviation.")
    repeats: bool = Field(False, description="Doing it more than once is part of the design (not 'repeated').")
    within: str | None = Field(None, description="Time budget: the step is due this long after `since` (e.g. 3d).")
    since: str | None = Field(None, description="The earlier step the budget counts from; default: the journey's start "
                                                "(the unit's first designed step).")

    _check_id = field_validator("id")(_id)
    _check_within = field_validator("within")(_duration)

    @field_validator("event", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_matcher(self) -> DesignStep:
        given = [k for k in ("event", "match", "touchpoint", "stage") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"step {self.id!r}: give exactly one of event, match, touchpoint, stage"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.since is not None and self.within is None:
            raise ValueError(f"step {self.id!r}: since needs within (the budget it counts)")
        return self

    @property
    def budget_seconds(self) -> float | None:
        return None if self.within is None else parse_duration(self.within)

    @property
    def rule(self) -> Rule | None:
        """The event rule of an event/match step (None for touchpoint and stage steps)."""
        if self.event is not None:
            return Rule(event=self.event)
        return self.match


class AnyOrder(_Strict):
    """Steps that all belong at this point of the journey, in any order among themselves."""

    any_order: list[DesignStep] = Field(min_length=2)


class OneOf(_Strict):
    """An exclusive choice: exactly one of the steps (self-serve or sales-assisted, not both)."""

    id: str = Field(description="The choice's id: exclusive_choice and missing deviations name it.")
    one_of: list[DesignStep] = Field(min_length=2)
    optional: bool = Field(False, description="Taking none of them is not a deviation.")

    _check_id = field_validator("id")(_id)

    @model_validator(mode="after")
    def _choice_is_optional_whole(self) -> OneOf:
        for s in self.one_of:
            if s.optional:
                raise ValueError(f"step {s.id!r}: a step of a one_of cannot be optional on its own; "
                                 f"write optional: true on the one_of {self.id!r} (taking none is then fine)")
        return self


def _item_kind(value: Any) -> str:
    if isinstance(value, dict):
        if "any_order" in value:
            return "[any_order]"
        if "one_of" in value:
            return "[one_of]"
    elif isinstance(value, AnyOrder):
        return "[any_order]"
    elif isinstance(value, OneOf):
        return "[one_of]"
    return "[step]"


Item = Annotated[
    Annotated[DesignStep, Tag("[step]")] | Annotated[AnyOrder, Tag("[any_order]")] | Annotated[OneOf, Tag("[one_of]")],
    Discriminator(_item_kind),
]


class Allowed(_Strict):
    """A deviation the team accepts: it does not make a unit non-conforming (it is still reported)."""

    deviation: Literal[DEVIATIONS]  # type: ignore[valid-type]
    step: str | None = Field(None, description="The step (or one_of id, or end_to_end) it is accepted for; "
                                               "default: every step.")
    reason: str | None = None


class Design(_Strict):
    """A designed journey: ordered items, an end-to-end budget and the accepted deviations."""

    steps: list[Item] = Field(default_factory=list, description="The designed steps, in order.")
    within: str | None = Field(None, description="End-to-end budget: from the journey's start to the first step "
                                                 "of the design's last item (e.g. 30d).")
    allow: list[Allowed] = Field(default_factory=list, description="Deviations the team accepts.")

    _check_within = field_validator("within")(_duration)

    def step_list(self) -> list[tuple[int, DesignStep, str | None]]:
        """(position, step, one_of id or None) for every step, in design order; the steps of a group share
        their item's position."""
        out = []
        for pos, item in enumerate(self.steps):
            if isinstance(item, DesignStep):
                out.append((pos, item, None))
            elif isinstance(item, AnyOrder):
                out += [(pos, s, None) for s in item.any_order]
            else:
                out += [(pos, s, item.id) for s in item.one_of]
        return out

    def problems(self, where: str) -> list[str]:
        """The design's own inconsistencies ('KEY: message'): ids used twice, `since` naming no earlier step,
        an allowlist entry naming no step."""
        out, seen = [], {}
        ids: list[str] = []
        step_ids: set[str] = set()
        for i, item in enumerate(self.steps):
            steps = ([(f"{where}.steps[{i}]", item)] if isinstance(item, DesignStep)
                     else [(f"{where}.steps[{i}].{'any_order' if isinstance(item, AnyOrder) else 'one_of'}[{j}]", s)
                           for j, s in enumerate(item.any_order if isinstance(item, AnyOrder) else item.one_of)])
            if isinstance(item, OneOf):
                if item.id in seen:
                    out.append(f"{where}.steps[{i}].id: id {item.id!r} is used twice")
                seen[item.id] = i
                ids.append(item.id)
            for key, s in steps:
                if s.id in seen:
                    out.append(f"{key}.id: id {s.id!r} is used twice")
                if s.since is not None and s.since not in step_ids:
                    later = s.since in {x.id for _, x, _ in self.step_list()}
                    near = difflib.get_close_matches(s.since, sorted(step_ids), n=1)
                    group = s.since in seen
                    out.append(f"{key}.since: {s.since!r} is not an earlier step"
                               + (" (it is a one_of: name one of its steps)" if group else "")
                               + (" (it comes later: a budget counts from an earlier step)" if later else "")
                               + (f"; did you mean {near[0]!r}?" if near and not later and not group else ""))
                seen[s.id] = i
                ids.append(s.id)
                step_ids.add(s.id)
        for i, a in enumerate(self.allow):
            if a.step is not None and a.step not in seen and a.step != END_TO_END:
                near = difflib.get_close_matches(a.step, [*ids, END_TO_END], n=1)
                out.append(f"{where}.allow[{i}].step: {a.step!r} is not a step of the design"
                           + (f"; did you mean {near[0]!r}?" if near else f" (steps: {', '.join(ids)})"))
        return out


class PersonaDesign(Design):
    """A persona's design: the keys it gives replace the default design's; the others are inherited."""

    steps: list[Item] | None = Field(None, description="The persona's steps; default: the default design's.")  # type: ignore[assignment]
    allow: list[Allowed] | None = Field(None, description="The persona's allowlist; default: the default design's.")  # type: ignore[assignment]


class FutureState(Design):
    """`future_state:`: the default design, and per-persona overrides."""

    personas: dict[str, PersonaDesign] = Field(
        default_factory=dict, description="Per persona id, the keys that differ from the default design.")

    def design_for(self, persona: str | None) -> Design | None:
        """The design a unit of `persona` is held to; None when there is none (no steps)."""
        base = {"steps": self.steps, "within": self.within, "allow": self.allow}
        override = self.personas.get(persona or "")
        if override is not None:
            for key in override.model_fields_set:
                if key in base:
                    base[key] = getattr(override, key)
        if not base["steps"]:
            return None
        return Design.model_construct(steps=list(base["steps"]), within=base["within"], allow=list(base["allow"] or []))

    def designs(self) -> list[tuple[str, Design]]:
        """('default' or 'personas.ID', design) for every design given (with inheritance applied)."""
        out = []
        if self.steps:
            out.append(("future_state", self.design_for(None)))
        for pid in self.personas:
            d = self.design_for(pid)
            if d is not None:
                out.append((f"future_state.personas.{pid}", d))
        return out

    def all_steps(self) -> list[tuple[str, DesignStep]]:
        """(key path, step) of every step written, for the reference checks."""
        out = []
        for where, items in [("future_state", self.steps)] + [(f"future_state.personas.{p}", d.steps or [])
                                                               for p, d in self.personas.items()]:
            for i, item in enumerate(items):
                if isinstance(item, DesignStep):
                    out.append((f"{where}.steps[{i}]", item))
                elif isinstance(item, AnyOrder):
                    out += [(f"{where}.steps[{i}].any_order[{j}]", s) for j, s in enumerate(item.any_order)]
                else:
                    out += [(f"{where}.steps[{i}].one_of[{j}]", s) for j, s in enumerate(item.one_of)]
        return out
