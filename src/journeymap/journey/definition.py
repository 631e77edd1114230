"""The journey definition: what `journeymap.yml` says, validated by pydantic.

The definition is data. It is validated once at the edge (`load_definition`) and then compiled by the
engine; nothing downstream re-reads YAML.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from journeymap.events.schema import SOURCES
from journeymap.ingest.mapping import SourceMapping
from journeymap.journey.base import StrictModel, check_id
from journeymap.journey.durations import parse_duration
from journeymap.journey.future_state import FutureState
from journeymap.journey.experiments import Experiment, experiment_references
from journeymap.journey.playbooks import Playbook, reference_problems
from journeymap.journey.rules import Condition, Rule
from journeymap.journey.settings import Analysis, EngineConfig, RiskConfig, Retention, ServerConfig, StoreConfig
from journeymap.journey.targets import Target


class Stage(StrictModel):
    """A journey stage. Stages are ordered as listed; terminal stages are outcomes (churned, lost)."""

    id: str
    name: str
    entry: Rule = Field(description="An event matching this rule moves the unit into the stage.")
    terminal: bool = Field(False, description="An outcome that ends the journey, such as churned or lost.")
    kind: Literal["churn", "lost", "won"] | None = Field(
        None, description="What a terminal stage means; churn stages feed the churn rate."
    )
    owner: str | None = None
    description: str | None = None
    opportunities: list[str] = Field(default_factory=list, description="Ideas the team has written down.")

    _id = field_validator("id")(check_id)

    @model_validator(mode="after")
    def _kind_needs_terminal(self) -> Stage:
        if self.kind in ("churn", "lost") and not self.terminal:
            raise ValueError(f"stage {self.id!r}: kind {self.kind!r} requires terminal: true")
        return self


class Touchpoint(StrictModel):
    """A named interaction: an event (narrowed by a rule) mapped to a channel, a stage and an owner."""

    id: str
    name: str
    match: Rule
    channel: str | None = None
    stage: str | None = None
    owner: str | None = None

    _id = field_validator("id")(check_id)


class Persona(StrictModel):
    """A persona: conditions over person or account traits (all must hold). First match wins."""

    id: str
    name: str
    description: str | None = None
    traits: dict[str, Condition] = Field(default_factory=dict)

    _id = field_validator("id")(check_id)

    @field_validator("traits", mode="before")
    @classmethod
    def _wrap_scalars(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: (v if isinstance(v, dict) else {"eq": v}) for k, v in value.items()}


class Feature(StrictModel):
    id: str
    name: str
    match: Rule

    _id = field_validator("id")(check_id)


class Milestones(StrictModel):
    """Moments that metrics are measured between."""

    start: Rule | None = Field(None, description="Starts the time-to-value clock; default: the unit's first event.")
    value_moment: Rule | None = Field(None, description="The first moment of value (time-to-value ends here).")
    customer_stage: str | None = Field(
        None, description="The stage in which a unit counts as a customer; the churn rate's denominator."
    )
    key_features: list[Feature] = Field(default_factory=list)


class Revenue(StrictModel):
    """Where MRR lives: events that state an account's MRR after them, and the event that ends it."""

    match: Rule = Field(description="Events that state the account's current MRR (subscription created, changed, renewed).")
    mrr: str = Field("mrr", description="Property path of the MRR stated by those events.")
    scale: float = Field(1.0, description="Multiply MRR by this, e.g. 0.01 for cents.")
    churn: Rule = Field(description="The event after which the account's MRR is 0 (subscription cancelled).")
    reason: str | None = Field(None, description="Property path of the churn reason, on the churn event.")
    involuntary: Rule | None = Field(None, description="Churn events that are involuntary (failed payment).")
    plan: str | None = Field(None, description="Property path of the plan name.")
    seats: str | None = Field(
        None, description="Property path of the licensed seats (quantity) on MRR events; feeds seat utilisation."
    )


class Survey(StrictModel):
    """Which events carry a survey answer, and where its score and comment are."""

    id: str
    kind: Literal["nps", "csat", "ces"]
    match: Rule
    score: str = Field("score", description="Property path of the numeric score.")
    comment: str | None = Field("comment", description="Property path of the free-text comment.")
    scale: tuple[float, float] | None = Field(
        None, description="Valid scores, inclusive; answers outside are ignored. Default: NPS 0-10, CSAT 1-5, CES 1-7."
    )
    promoter_min: float = Field(9, description="NPS: scores at or above are promoters.")
    detractor_max: float = Field(6, description="NPS: scores at or below are detractors.")
    satisfied_min: float = Field(4, description="CSAT: scores at or above are satisfied.")

    _id = field_validator("id")(check_id)

    @property
    def bounds(self) -> tuple[float, float]:
        return self.scale or {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}[self.kind]



class VoiceSource(StrictModel):
    """Events that carry customer text (a survey comment, a ticket subject, a review, an interview), for
    `journeymap voice` (docs/metrics/voice-of-customer.md)."""

    match: Rule = Field(description="Events that carry the text.")
    text: str = Field(description="Property path of the text.")
    kind: Literal["survey", "ticket", "review", "interview", "other"] | None = Field(
        None, description="What the text is; default: inferred from the event (source survey/support, a review, an interview).")
    score: str | None = Field(None, description="Property path of a numeric score given with the text (optional).")

HEALTH_COMPONENTS: dict[str, tuple[str, str]] = {
    # component: (feature column in insights.risk.features, default direction)
    "recency": ("recency_days", "lower_is_better"),
    "frequency": ("active_days_30d", "higher_is_better"),
    "depth": ("key_features_90d", "higher_is_better"),
    "adoption": ("key_feature_adoption", "higher_is_better"),
    "trend": ("activity_trend", "higher_is_better"),
    "utilisation": ("seat_utilisation", "higher_is_better"),
    "support_load": ("tickets_90d", "lower_is_better"),
    "support_effort": ("max_effort_90d", "lower_is_better"),
    "nps": ("last_nps", "higher_is_better"),
    "csat": ("last_csat", "higher_is_better"),
    "ces": ("last_ces", "lower_is_better"),
    "failed_payments": ("failed_payments_60d", "lower_is_better"),
    "downgrades": ("downgrades_90d", "lower_is_better"),
    "tenure": ("tenure_days", "higher_is_better"),
}
"""Named health components and the feature each one reads (docs/metrics/health-and-risk.md)."""


class HealthComponent(StrictModel):
    """One part of the health score: a feature, its weight and which way is healthy."""

    weight: float = Field(gt=0, description="Relative weight; weights are normalised to sum to 1.")
    direction: Literal["higher_is_better", "lower_is_better"] | None = Field(
        None, description="Which way is healthy; default: the named component's usual direction."
    )
    feature: str | None = Field(None, description="Feature column to read; default: the named component's feature.")


class HealthSignals(StrictModel):
    """Which events the health and churn-risk features read. Defaults fit Segment-style product events
    and the Zendesk and Stripe mappings that `journeymap demo` writes."""

    usage: Rule = Field(default_factory=lambda: Rule(source=["product"]), description="Product usage events.")
    ticket: Rule = Field(default_factory=lambda: Rule(event=["ticket_created"]), description="A support ticket opened.")
    ticket_solved: Rule = Field(default_factory=lambda: Rule(event=["ticket_solved"]), description="A ticket solved.")
    effort: str = Field("Effort score", description="Property path of the effort score (1-7) on solved tickets.")
    high_effort: float = Field(5, description="Effort at or above this counts as a high-effort ticket.")
    failed_payment: Rule = Field(default_factory=lambda: Rule(event=["payment_failed"]), description="A failed payment.")
    early_touchpoints: list[str] | None = Field(
        None, description="Touchpoints counted in the first week after milestones.start; default: those of the "
                          "stages between the start milestone's stage and the value moment's stage.")
    early_window: str = Field("7d", description="How long after milestones.start counts as the first week.")


class Health(StrictModel):
    """The health score: weighted components (or weights learned from churn), bands and expansion signals."""

    components: dict[str, HealthComponent] | None = Field(
        None, description="Components by name; omit to learn weights from the churn model's logistic coefficients.")
    bands: dict[str, float] = Field(
        default_factory=lambda: {"red": 40.0, "yellow": 70.0, "green": 100.0},
        description="Band name -> upper bound of the score (exclusive, the last inclusive), in ascending order.")
    expansion_utilisation: float = Field(0.8, description="Seat utilisation at or above this flags expansion.")
    expansion_trend: float = Field(1.2, description="Activity trend at or above this flags growing usage.")
    expansion_min_active_days: int = Field(
        8, description="Growing usage also needs this many active days in the last 30 (1 -> 2 events is not growth).")
    signals: HealthSignals = Field(default_factory=HealthSignals)

    @model_validator(mode="after")
    def _known_components(self) -> Health:
        for name, c in (self.components or {}).items():
            if c.feature is None and name not in HEALTH_COMPONENTS:
                raise ValueError(f"health.components.{name}: not a known component ({', '.join(HEALTH_COMPONENTS)}); "
                                 "give `feature:` to use another feature column")
        bounds = list(self.bands.values())
        if not bounds or bounds != sorted(bounds) or bounds[-1] != 100:
            raise ValueError("health.bands: upper bounds must ascend and the last must be 100")
        parse_duration(self.signals.early_window)
        return self

    def component_list(self) -> list[tuple[str, str, str, float]]:
        """(name, feature, direction, weight) per configured component."""
        out = []
        for name, c in (self.components or {}).items():
            feature, direction = HEALTH_COMPONENTS.get(name, (None, "higher_is_better"))
            out.append((name, c.feature or feature, c.direction or direction, c.weight))
        return out


EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


class OwnerContact(StrictModel):
    """How to reach an owner the definition or the data names (a stage's owner, a CRM owner such as a CSM):
    what a playbook's `email` action with `to: owner` sends to when the owner is a name, not an address."""

    email: str = Field(description="The owner's email address.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"email": value} if isinstance(value, str) else value

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        if not EMAIL.match(value.strip()):
            raise ValueError(f"{value!r} is not an email address (name@example.com)")
        return value.strip()


class JourneyDefinition(StrictModel):
    """The whole of `journeymap.yml`."""

    name: str = "Customer journey"
    analysis: Analysis = Field(default_factory=Analysis)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    retention: Retention = Field(default_factory=Retention)
    sources: dict[str, SourceMapping] = Field(default_factory=dict)
    stages: list[Stage] = Field(min_length=1)
    touchpoints: list[Touchpoint] = Field(default_factory=list)
    personas: list[Persona] = Field(default_factory=list)
    milestones: Milestones = Field(default_factory=Milestones)
    surveys: list[Survey] = Field(default_factory=list)
    revenue: Revenue | None = None
    health: Health | None = None
    risk: RiskConfig = Field(default_factory=RiskConfig)
    targets: list[Target] = Field(default_factory=list)
    future_state: FutureState | None = Field(
        None, description="The designed journey that `journeymap conformance` holds real journeys to: steps, "
                          "any-order groups, exclusive choices, time budgets, accepted deviations; per persona where "
                          "needed (docs/metrics/conformance.md).")
    voice: list[VoiceSource] | None = Field(
        None, description="Where customer text lives; default: survey comments plus comment/text/body/title/subject/"
                          "description properties of any event (docs/metrics/voice-of-customer.md).")
    experiments: list[Experiment] = Field(
        default_factory=list, description="A/B tests: where the variant lives, the control, the intended split, goal "
                                          "metrics and guardrails (docs/metrics/experiments.md).")
    playbooks: list[Playbook] = Field(
        default_factory=list, description="What to do when a unit enters a condition: evaluated at every refresh "
                                          "(docs/playbooks.md).")
    owners: dict[str, OwnerContact] = Field(
        default_factory=dict, description="Owner name -> email address (or {email: ...}): where an `email` action "
                                          "with `to: owner` goes when the owner is a name, such as a CRM's CSM or "
                                          "a stage's owner (docs/playbooks.md).")

    @model_validator(mode="after")
    def _references(self) -> JourneyDefinition:
        stage_ids = [s.id for s in self.stages]
        _unique("stages", stage_ids)
        _unique("touchpoints", [t.id for t in self.touchpoints])
        _unique("personas", [p.id for p in self.personas])
        _unique("surveys", [s.id for s in self.surveys])
        _unique("milestones.key_features", [f.id for f in self.milestones.key_features])
        known = set(stage_ids)
        for i, tp in enumerate(self.touchpoints):
            if tp.stage and tp.stage not in known:
                raise ValueError(f"touchpoints[{i}] ({tp.id}): unknown stage {tp.stage!r}; stages are {stage_ids}")
        if self.milestones.customer_stage and self.milestones.customer_stage not in known:
            raise ValueError(f"milestones.customer_stage: unknown stage {self.milestones.customer_stage!r}")
        features = {f.id for f in self.milestones.key_features}
        personas = {p.id for p in self.personas}
        touchpoints = {t.id for t in self.touchpoints}
        for i, t in enumerate(self.targets):
            if t.stage and t.stage not in known:
                raise ValueError(f"targets[{i}] ({t.metric}): unknown stage {t.stage!r}")
            if t.feature and t.feature not in features:
                raise ValueError(f"targets[{i}] ({t.metric}): unknown feature {t.feature!r}")
            if t.persona and t.persona not in personas:
                raise ValueError(f"targets[{i}] ({t.metric}): unknown persona {t.persona!r}")
            if t.touchpoint and t.touchpoint not in touchpoints:
                raise ValueError(f"targets[{i}] ({t.metric}): unknown touchpoint {t.touchpoint!r}")
        for name, mapping in self.sources.items():
            if mapping.source not in SOURCES:
                raise ValueError(f"sources.{name}.source: {mapping.source!r} is not one of {', '.join(SOURCES)}")
        return self

    def value_problems(self) -> list[tuple[str, str]]:
        """(key path, message) per target whose value is out of its metric's range (`Target.value_problem`);
        `journey.load` turns them into a DefinitionError. Checked after the model validates, as they read
        other sections (the CES survey's scale)."""
        ces = [s.bounds for s in self.surveys if s.kind == "ces"]
        scale = (min(lo for lo, _ in ces), max(hi for _, hi in ces)) if ces else (1.0, 7.0)
        out = []
        for i, t in enumerate(self.targets):
            problem = t.value_problem(scale)
            if problem:
                out.append((f"targets[{i}].value", problem))
        if self.future_state is not None:
            out += future_state_problems(self.future_state, [s.id for s in self.stages],
                                         [t.id for t in self.touchpoints], [p.id for p in self.personas])
        out += experiment_references(self.experiments, [s.id for s in self.stages],
                                     self.milestones.value_moment is not None, self.revenue is not None)
        declared = sorted({t for m in self.sources.values() for t in m.traits})
        out += reference_problems(self.playbooks, [s.id for s in self.stages], [p.id for p in self.personas],
                                  {s.id: s.kind for s in self.surveys}, declared,
                                  list(self.health.bands) if self.health else None,
                                  bool(self.revenue and self.revenue.seats))
        return out

    def playbook(self, playbook_id: str) -> Playbook:
        for p in self.playbooks:
            if p.id == playbook_id:
                return p
        raise KeyError(playbook_id)

    def owner_email(self, owner: str | None) -> str | None:
        """The address of an owner: the owner itself when it is one, else its entry under `owners:`."""
        if owner is None:
            return None
        if EMAIL.match(owner.strip()):
            return owner.strip()
        contact = self.owners.get(owner)
        return contact.email if contact is not None else None

    def playbook_level(self, playbook: Playbook) -> str:
        return playbook.level or self.analysis.level

    @property
    def progression(self) -> list[Stage]:
        """The ordered, non-terminal stages: the funnel."""
        return [s for s in self.stages if not s.terminal]

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise KeyError(stage_id)


def _near(given: str, known: list[str], what: str) -> str:
    import difflib

    close = difflib.get_close_matches(given, known, n=1)
    return f"did you mean {close[0]!r}?" if close else f"{what}: {', '.join(known) or 'none'}"


def future_state_problems(fs: FutureState, stages: list[str], touchpoints: list[str],
                          personas: list[str]) -> list[tuple[str, str]]:
    """(key path, message) per problem of the design: a touchpoint, stage or persona it names that does not
    exist (with the closest that does), an id used twice, `since` naming no earlier step, an allowlist entry
    naming no step."""
    problems = []
    for pid in fs.personas:
        if pid not in personas:
            problems.append((f"future_state.personas.{pid}", f"unknown persona {pid!r}; {_near(pid, personas, 'personas')}"))
    for key, step in fs.all_steps():
        if step.touchpoint is not None and step.touchpoint not in touchpoints:
            problems.append((f"{key}.touchpoint", f"unknown touchpoint {step.touchpoint!r}; "
                                                  f"{_near(step.touchpoint, touchpoints, 'touchpoints')}"))
        if step.stage is not None and step.stage not in stages:
            problems.append((f"{key}.stage", f"unknown stage {step.stage!r}; {_near(step.stage, stages, 'stages')}"))
    for where, design in fs.designs():
        if where != "future_state" and not ({"steps", "allow"} & fs.personas[where.rsplit(".", 1)[1]].model_fields_set):
            continue  # inherits the default's steps and allowlist: its problems are the default's
        for text in design.problems(where):
            key, message = text.split(": ", 1)
            problems.append((key, message))
    return list(dict.fromkeys(problems))


def _unique(where: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"{where}: id {i!r} is used twice")
        seen.add(i)
