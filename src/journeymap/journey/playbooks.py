"""Playbooks: `playbooks:` in journeymap.yml, what to do when a unit enters a condition (docs/playbooks.md).

A playbook says when a unit enters it (`entry`, exactly one kind), who it applies to (`audience`), how often a
unit may enter (`reentry`), what ends a unit's run (`goal`, `exit`), who owns the firing (`owner`), which
share of units is held out (`holdout`), and what is done (`actions`). The definition is data, validated here;
`journeymap.act.evaluate` evaluates it on the journey state at every refresh.

Checked at load (journey.load names the key path): ids, stage and persona ids ("did you mean"), durations,
webhook and Slack URLs (http or https), the owner trait against the traits the source mappings declare.
Checked against the data by `journeymap validate` (engine.checks): the event names and properties of every
rule. Checked before anything is recorded to send (act.evaluate): that each webhook's `secret_env` is set.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from journeymap.journey.durations import parse_duration
from journeymap.journey.rules import Condition, Rule


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def check_duration(value: Any) -> str:
    """A positive duration such as '7d' (s, m, h, d, w)."""
    text = str(value).strip()
    if parse_duration(text) <= 0:
        raise ValueError(f"{text!r} must be longer than 0 (e.g. '7d')")
    return text


def check_delay(value: Any) -> str:
    """A duration of 0 or more such as '0s' or '2h'."""
    text = str(value).strip()
    if parse_duration(text) < 0:
        raise ValueError(f"{text!r} must not be negative")
    return text


Duration = Annotated[str, AfterValidator(check_duration)]


def check_http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL: write https://host/path")
    return value.strip()


HttpUrl = Annotated[str, AfterValidator(check_http_url)]


class Absence(_Strict):
    """Did X and not Y within N of X: enters at X's time + N when no Y came in (X, X + N]."""

    did: Rule = Field(description="The event that starts the clock (e.g. signed up).")
    not_did: Rule = Field(description="The event that, within `within` of `did`, keeps the unit out.")
    within: Duration = Field(description="How long after `did` the unit has to do `not_did`, e.g. '7d'.")


class Stalled(_Strict):
    """In a stage longer than a duration, or than the stage's p90 time-in-stage (completed visits)."""

    stage: str
    beyond: str = Field(description="A duration such as '14d', or 'p90': the stage's 90th percentile time in stage.")

    @field_validator("beyond")
    @classmethod
    def _beyond(cls, value: str) -> str:
        return value if value == "p90" else check_duration(value)


class SurveyAnswer(_Strict):
    """A survey answer: by the NPS category, or a condition on the score (CES >= 5: `score: {gte: 5}`)."""

    survey: str = Field(description="A survey id from `surveys:`.")
    answer: Literal["detractor", "passive", "promoter"] | None = Field(None, description="NPS only.")
    score: Condition | None = None

    @model_validator(mode="after")
    def _one(self) -> SurveyAnswer:
        if (self.answer is None) == (self.score is None):
            raise ValueError("give either answer (detractor, passive, promoter) or score (a condition such as {gte: 5})")
        return self


class Comment(_Strict):
    """A customer text (a survey comment, a ticket, a review, an interview: the voice sources) on a theme, with
    the sentiment asked for: `theme` lists the words or phrases that name it, matched as whole words whatever
    the case; VADER's compound score says the sentiment (docs/metrics/voice-of-customer.md)."""

    theme: list[str] = Field(min_length=1, description="Words or phrases naming the theme, e.g. [billing, invoice].")
    sentiment: Literal["negative", "positive", "any"] = Field(
        "negative", description="negative: compound <= -0.05; positive: >= 0.05; any: whatever it says.")
    kinds: list[Literal["survey", "ticket", "review", "interview", "other"]] | None = Field(
        None, description="Only texts of these kinds (default: all).")

    @field_validator("theme")
    @classmethod
    def _terms(cls, value: list[str]) -> list[str]:
        terms = [t.strip() for t in value]
        if any(not t for t in terms):
            raise ValueError("a theme term is empty")
        return terms


class UsageDrop(_Strict):
    """Usage (or seats) dropping: the count of `usage` events in the last `window` is at most (1 - fraction)
    of the window before, checked at the end of each window-long period since the unit's first event."""

    fraction: float = Field(gt=0, le=1, description="e.g. 0.5: usage halved.")
    window: Duration = Field("30d")
    usage: Rule | None = Field(None, description="The events counted; default: health.signals.usage (product events).")
    min_before: int = Field(5, ge=1, description="The window before needs at least this many events.")


class HealthBand(_Strict):
    """The account's health band changed into one of `to` (from another band, or first seen in it)."""

    to: list[str] = Field(description="Bands from health.bands, e.g. [red] or [yellow, red].")

    @field_validator("to", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class SeatsDrop(_Strict):
    """Licensed seats (revenue.seats on the MRR events) dropping: an MRR event whose seats are at most
    (1 - fraction) of the seats stated at or before `window` earlier."""

    fraction: float = Field(gt=0, le=1, description="e.g. 0.3: seats down by 30% or more.")
    window: Duration = Field("90d")


ENTRY_KINDS = ("event", "absence", "stage_entered", "stalled", "risk_above", "health_band", "survey",
               "comment", "failed_payment", "usage_drop", "seats_drop")


class Entry(_Strict):
    """When a unit enters the playbook: exactly one of the keys."""

    event: Rule | None = Field(None, description="An event matching this rule (the journey rule language).")
    absence: Absence | None = None
    stage_entered: str | None = Field(None, description="The unit enters this stage.")
    stalled: Stalled | None = None
    risk_above: float | None = Field(None, ge=0, le=1, description="The stored churn risk (state_risk) is above this.")
    health_band: HealthBand | None = Field(None, description="The health band changed into one of these.")
    survey: SurveyAnswer | None = None
    comment: Comment | None = Field(None, description="A customer text on a theme with a sentiment (a negative "
                                                       "comment about billing).")
    failed_payment: bool | None = Field(None, description="A failed payment (health.signals.failed_payment).")
    usage_drop: UsageDrop | None = None
    seats_drop: SeatsDrop | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Entry:
        given = [k for k in ENTRY_KINDS if getattr(self, k) not in (None, False)]
        if len(given) != 1:
            raise ValueError(f"an entry needs exactly one of {', '.join(ENTRY_KINDS)}; got {given or 'none'}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ENTRY_KINDS if getattr(self, k) not in (None, False))


class Audience(_Strict):
    """Who the playbook applies to (all given filters must hold, at the time of entry where it has one)."""

    persona: list[str] | None = None
    plan: list[str] | None = Field(None, description="The plan of the unit's latest revenue event at entry.")
    mrr: dict[Literal["gt", "gte", "lt", "lte"], float] | None = Field(
        None, description="MRR band at entry, e.g. {gte: 100, lt: 1000}.")
    owner: list[str] | None = Field(None, description="Only units whose resolved owner is one of these.")
    traits: dict[str, Condition] = Field(default_factory=dict, description="Conditions on the unit's traits.")

    @field_validator("persona", "plan", "owner", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("traits", mode="before")
    @classmethod
    def _wrap_scalars(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: (v if isinstance(v, dict) else {"eq": v}) for k, v in value.items()}


class Reentry(_Strict):
    cooldown: Duration = Field("30d", description="A unit does not enter again within this of its last entry.")
    max_entries: int | None = Field(1, ge=1, description="At most this many entries per unit (null: no limit).")


class Outcome(Rule):
    """A goal or exit: an event rule, or `stage: ID` (the unit enters that stage)."""

    stage: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Outcome:
        if not (self.stage or self.event or self.source or self.channel or self.where or self.any):
            raise ValueError("give a stage or an event rule (event, source, channel, where, any)")
        if self.stage and (self.event or self.source or self.channel or self.where or self.any):
            raise ValueError("give either stage or an event rule, not both")
        return self

    def rule(self) -> Rule | None:
        return None if self.stage else Rule.model_validate(self.model_dump(exclude={"stage", "within"}, by_alias=True,
                                                                           exclude_defaults=True))


class Goal(Outcome):
    """The goal: an Outcome, and the window the play's effect is measured in (docs/playbooks.md, "Measured
    effect"): an entry reached the goal when it did within `within` of entering."""

    within: Duration = Field("30d", description="The effect's window: the goal counts when reached within this "
                                                "of the entry (and churn when it happens within it).")


class Owner(_Strict):
    """Who every firing names: a trait of the unit (its account's for a person: the CRM's csm), or a stage's
    owner from `stages:` (`stage: current` is the stage the unit is in at entry); `fallback` when that is empty."""

    trait: str | None = None
    stage: str | None = None
    fallback: str

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"fallback": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one(self) -> Owner:
        if self.trait and self.stage:
            raise ValueError("give trait or stage, not both")
        return self


class _Action(_Strict):
    delay: Annotated[str, AfterValidator(check_delay)] = Field("0s", description="Send this long after the entry is recorded.")

    @property
    def delay_seconds(self) -> float:
        return parse_duration(self.delay)


class WebhookAction(_Action):
    """A signed webhook (Standard Webhooks): the secret is read from the environment variable `secret_env`."""

    kind: Literal["webhook"]
    url: HttpUrl
    secret_env: str = Field(description="The environment variable holding the signing secret (never the secret).")


class EmailAction(_Action):
    kind: Literal["email"]
    to: str = Field("owner", description="'owner' (the entry's owner, an address) or a fixed address.")
    subject: str = "{playbook}: {unit}"


class SlackAction(_Action):
    kind: Literal["slack"]
    url: HttpUrl
    text: str = "{playbook}: {unit} ({owner})"


class TaskAction(_Action):
    kind: Literal["task"]
    title: str = "{playbook}: {unit}"
    due: Duration | None = Field(None, description="Due this long after the entry, e.g. '2d'.")


ACTION_KINDS = ("webhook", "email", "slack", "task")
Action = Annotated[WebhookAction | EmailAction | SlackAction | TaskAction, Field(discriminator="kind")]


class Playbook(_Strict):
    id: str
    name: str
    description: str | None = None
    level: Literal["person", "account"] | None = Field(None, description="Default: analysis.level.")
    entry: Entry
    audience: Audience = Field(default_factory=Audience)
    reentry: Reentry = Field(default_factory=Reentry)
    goal: Goal | None = Field(None, description="Reaching it ends the run; the play's effect is measured on it, "
                                                 "within `goal.within` (default 30d) of the entry.")
    exit: Outcome | None = Field(None, description="Ends the run without the goal (e.g. churned).")
    holdout: float = Field(0.0, ge=0, lt=1, description="Share of units that enter but get no action (e.g. 0.1).")
    started: dt.date | None = Field(None, description="The day the playbook went live (its watermark): entries from "
                                                      "then on are sent and measured. Default: the data's time at its "
                                                      "first evaluation.")
    owner: Owner
    actions: list[Action] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
            raise ValueError(f"{value!r} is not a valid id: use lower-case letters, digits and _, starting with a letter")
        return value

    def rules(self) -> list[tuple[str, Rule]]:
        """(key path under the playbook, rule) of every event rule it has: what `validate` checks against the data."""
        e = self.entry
        out: list[tuple[str, Rule]] = []
        if e.event:
            out.append(("entry.event", e.event))
        if e.absence:
            out += [("entry.absence.did", e.absence.did), ("entry.absence.not_did", e.absence.not_did)]
        if e.usage_drop and e.usage_drop.usage:
            out.append(("entry.usage_drop.usage", e.usage_drop.usage))
        for name in ("goal", "exit"):
            outcome = getattr(self, name)
            if outcome is not None and outcome.rule() is not None:
                out.append((name, outcome.rule()))
        return out

    def missing_secrets(self, environ=None) -> list[tuple[str, str]]:
        """(key path, message) per webhook whose secret_env is not set."""
        environ = os.environ if environ is None else environ
        return [(f"actions[{i}].secret_env",
                 f"the environment variable {a.secret_env!r} (this webhook's signing secret) is not set")
                for i, a in enumerate(self.actions) if isinstance(a, WebhookAction) and not environ.get(a.secret_env)]


def _near(value: str, known: list[str]) -> str:
    near = difflib.get_close_matches(value, known, n=1)
    return f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(known) or 'none'})"


def reference_problems(playbooks: list[Playbook], stages: list[str], personas: list[str], surveys: dict[str, str],
                       declared_traits: list[str], bands: list[str] | None = None,
                       seats: bool = True) -> list[tuple[str, str]]:
    """(key path, message) per unknown stage, persona, survey or owner trait (declared_traits: the traits the
    source mappings copy; empty when none declares any, then the data decides in `validate`)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, p in enumerate(playbooks):
        key = f"playbooks[{i}]"
        if p.id in seen:
            out.append((f"{key}.id", f"id {p.id!r} is used twice"))
        seen.add(p.id)
        stage_refs = [("entry.stage_entered", p.entry.stage_entered),
                      ("entry.stalled.stage", p.entry.stalled.stage if p.entry.stalled else None),
                      ("goal.stage", p.goal.stage if p.goal else None), ("exit.stage", p.exit.stage if p.exit else None),
                      ("owner.stage", p.owner.stage if p.owner.stage != "current" else None)]
        for where, ref in stage_refs:
            if ref and ref not in stages:
                out.append((f"{key}.{where}", f"unknown stage {ref!r}{_near(ref, stages)}"))
        for j, persona in enumerate(p.audience.persona or []):
            if persona not in personas:
                out.append((f"{key}.audience.persona[{j}]", f"unknown persona {persona!r}{_near(persona, personas)}"))
        if p.entry.survey:
            s = p.entry.survey
            if s.survey not in surveys:
                out.append((f"{key}.entry.survey.survey", f"unknown survey {s.survey!r}{_near(s.survey, list(surveys))}"))
            elif s.answer and surveys[s.survey] != "nps":
                out.append((f"{key}.entry.survey.answer", f"survey {s.survey!r} is {surveys[s.survey]}, not nps: "
                                                          "answer applies to NPS; use score (e.g. {gte: 5})"))
        for j, b in enumerate(p.entry.health_band.to if p.entry.health_band else []):
            if bands is None:
                out.append((f"{key}.entry.health_band", "journeymap.yml has no health: section (with components)"))
                break
            if b not in bands:
                out.append((f"{key}.entry.health_band.to[{j}]", f"unknown health band {b!r}{_near(b, bands)}"))
        if p.entry.seats_drop and not seats:
            out.append((f"{key}.entry.seats_drop", "needs revenue.seats in journeymap.yml (the property path of the "
                                                   "licensed seats on the MRR events)"))
        if p.owner.trait and declared_traits and p.owner.trait not in declared_traits:
            out.append((f"{key}.owner.trait", f"no source mapping copies a trait {p.owner.trait!r}"
                                              f"{_near(p.owner.trait, declared_traits)}"))
    return out
