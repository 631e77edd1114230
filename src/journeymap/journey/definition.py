"""The journey definition: what `journeymap.yml` says, validated by pydantic.

The definition is data. It is validated once at the edge (`load_definition`) and then compiled by the
engine; nothing downstream re-reads YAML.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from journeymap.errors import closest, did_you_mean
from journeymap.events.schema import SOURCES
from journeymap.ingest.mapping import SourceMapping
from journeymap.ingest.store import check_setting
from journeymap.journey.durations import parse_duration
from journeymap.journey.future_state import FutureState
from journeymap.journey.experiments import Experiment, experiment_references
from journeymap.journey.playbooks import Playbook, reference_problems
from journeymap.journey.rules import Condition, Rule

_ID = re.compile(r"^[a-z][a-z0-9_]*$")


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(f"{value!r} is not a valid id: use lower-case letters, digits and _, starting with a letter")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Stage(_Strict):
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

    _id = field_validator("id")(_check_id)

    @model_validator(mode="after")
    def _kind_needs_terminal(self) -> Stage:
        if self.kind in ("churn", "lost") and not self.terminal:
            raise ValueError(f"stage {self.id!r}: kind {self.kind!r} requires terminal: true")
        return self


class Touchpoint(_Strict):
    """A named interaction: an event (narrowed by a rule) mapped to a channel, a stage and an owner."""

    id: str
    name: str
    match: Rule
    channel: str | None = None
    stage: str | None = None
    owner: str | None = None

    _id = field_validator("id")(_check_id)


class Persona(_Strict):
    """A persona: conditions over person or account traits (all must hold). First match wins."""

    id: str
    name: str
    description: str | None = None
    traits: dict[str, Condition] = Field(default_factory=dict)

    _id = field_validator("id")(_check_id)

    @field_validator("traits", mode="before")
    @classmethod
    def _wrap_scalars(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: (v if isinstance(v, dict) else {"eq": v}) for k, v in value.items()}


class Feature(_Strict):
    id: str
    name: str
    match: Rule

    _id = field_validator("id")(_check_id)


class Milestones(_Strict):
    """Moments that metrics are measured between."""

    start: Rule | None = Field(None, description="Starts the time-to-value clock; default: the unit's first event.")
    value_moment: Rule | None = Field(None, description="The first moment of value (time-to-value ends here).")
    customer_stage: str | None = Field(
        None, description="The stage in which a unit counts as a customer; the churn rate's denominator."
    )
    key_features: list[Feature] = Field(default_factory=list)


class Revenue(_Strict):
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


class Survey(_Strict):
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

    _id = field_validator("id")(_check_id)

    @property
    def bounds(self) -> tuple[float, float]:
        return self.scale or {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}[self.kind]



class VoiceSource(_Strict):
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


class HealthComponent(_Strict):
    """One part of the health score: a feature, its weight and which way is healthy."""

    weight: float = Field(gt=0, description="Relative weight; weights are normalised to sum to 1.")
    direction: Literal["higher_is_better", "lower_is_better"] | None = Field(
        None, description="Which way is healthy; default: the named component's usual direction."
    )
    feature: str | None = Field(None, description="Feature column to read; default: the named component's feature.")


class HealthSignals(_Strict):
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


class Health(_Strict):
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


_METRICS = (
    "ttv_p50", "ttv_p90", "nps", "csat", "ces", "conversion", "time_in_stage_p50",
    "time_in_stage_p90", "churn_rate", "adoption", "reached",
)


RATE_METRICS = frozenset({"conversion", "churn_rate", "adoption", "reached", "csat"})
"""Rates: a target is a fraction in [0, 1] or a percentage such as '25%'."""
DURATION_METRICS = frozenset({"ttv_p50", "ttv_p90", "time_in_stage_p50", "time_in_stage_p90"})
"""Durations: a target is a positive duration such as '3d' (or a number of seconds)."""


def _percent(text: str) -> float | None:
    """The number in a percentage such as '25%' or '-3.5 %'; None for any other text."""
    match = re.fullmatch(r"([+-]?\d+(?:\.\d+)?)\s*%", text)
    return float(match.group(1)) if match else None


def _number(x: float) -> str:
    """A number as people write it: 1000 not 1000.0, 0.1 not 0.1000000001."""
    return f"{x:g}" if abs(x) < 1e15 else str(x)


class Target(_Strict):
    """A future-state target, e.g. `ttv_p50 <= 3d`, `nps >= 40`, or `ces` down 15% year over year."""

    metric: Literal[_METRICS]  # type: ignore[valid-type]
    op: Literal["<=", ">=", "<", ">"] | None = None
    value: float | str | None = Field(None, description="A number, a percentage like '25%' or a duration like '3d'.")
    change: str | None = Field(None, description="A relative target such as '-15%'.")
    baseline: Literal["yoy"] | None = None
    stage: str | None = None
    touchpoint: str | None = None
    feature: str | None = None
    persona: str | None = None
    label: str | None = None
    reference: str | None = Field(None, description="Where the target's number comes from.")

    @model_validator(mode="after")
    def _absolute_or_relative(self) -> Target:
        if (self.value is None) == (self.change is None):
            raise ValueError(f"target {self.metric}: give either op+value or change+baseline")
        if self.value is not None and self.op is None:
            raise ValueError(f"target {self.metric}: an absolute target needs op")
        if self.change is not None:
            if self.baseline is None:
                raise ValueError(f"target {self.metric}: a relative target needs baseline: yoy")
            if not re.fullmatch(r"[+-]\d+(\.\d+)?%", self.change):
                raise ValueError(f"target {self.metric}: change {self.change!r} must look like '-15%'")
        if self.metric in ("conversion", "time_in_stage_p50", "time_in_stage_p90") and not self.stage:
            raise ValueError(f"target {self.metric}: needs stage")
        if self.metric == "adoption" and not self.feature:
            raise ValueError("target adoption: needs feature")
        return self

    def value_problem(self, ces_scale: tuple[float, float] = (1, 7)) -> str | None:
        """What is wrong with `value` for this metric's unit (None when it is fine): a rate is a fraction in
        [0, 1] or a percentage in [0%, 100%], NPS is points in [-100, 100], CES lies within the CES survey's
        scale (`ces_scale`), a duration is positive. Suggests the likely meant value ("did you mean 0.1?")."""
        v, m = self.value, self.metric
        if v is None:
            return None
        text = v.strip() if isinstance(v, str) else None
        percent = _percent(text) if text is not None else None
        if m in RATE_METRICS:
            if percent is not None:
                return None if 0 <= percent <= 100 else f"{m} is a rate: {v!r} is not between 0% and 100%"
            if text is not None:
                return f"{m} is a rate: write a fraction such as 0.25 or a percentage such as '25%', not {v!r}"
            if 0 <= v <= 1:
                return None
            hint = f" (did you mean {_number(v / 100)}?)" if 1 < v <= 100 else ""
            return f"{m} is a rate between 0 and 1 (or a percentage such as '25%'), not {_number(v)}{hint}"
        if m in DURATION_METRICS:
            if percent is not None:
                return f"{m} is a duration: write a number and one of s, m, h, d, w (e.g. '3d'), not {v!r}"
            try:
                seconds = parse_duration(text) if text is not None else float(v)
            except ValueError as exc:
                return str(exc)
            return None if seconds > 0 else f"{m} is a duration and must be positive, not {v!r}"
        lo, hi = (-100.0, 100.0) if m == "nps" else ces_scale
        if text is not None:
            hint = f" (did you mean {_number(percent)}?)" if percent is not None else ""
            return f"{m} is a score: write a number between {_number(lo)} and {_number(hi)}, not {v!r}{hint}"
        if lo <= v <= hi:
            return None
        what = "NPS is in points" if m == "nps" else "CES is the mean answer on the CES survey's scale"
        return f"{what}, from {_number(lo)} to {_number(hi)}: {_number(v)} is out of range"

    def numeric_value(self) -> float | None:
        """The absolute value in the metric's unit: seconds for durations, 0-100 for rates (a bare number is
        a fraction: 0.25 is 25), points for NPS, the scale's units for CES."""
        if self.value is None:
            return None
        text = self.value.strip() if isinstance(self.value, str) else None
        if text is not None and text.endswith("%"):
            return float(text[:-1])
        if text is not None:
            return parse_duration(text)
        value = float(self.value)
        return 100.0 * value if self.metric in RATE_METRICS else value

    def relative_change(self) -> float | None:
        return None if self.change is None else float(self.change[:-1]) / 100.0


class EngineConfig(_Strict):
    backend: Literal["duckdb", "spark"] = "duckdb"
    master: str | None = None
    remote: str | None = None
    path: str | None = Field(None, description="Spark: where the event Parquet lives.")


class StoreConfig(_Strict):
    """DuckDB settings for every connection to the workspace store; JOURNEYMAP_* environment variables
    override each key (docs/store.md). Unset keys keep DuckDB's defaults, but checkpoint_threshold
    (journeymap's is 256MB)."""

    memory_limit: str | None = Field(
        None, description="Most memory DuckDB may use before it spills to temp_directory: 4GB, 512MiB, 50%. "
                          "DuckDB's default is 80% of RAM. Env: JOURNEYMAP_MEMORY_LIMIT.")
    threads: int | None = Field(None, description="DuckDB worker threads (default: all cores). Env: JOURNEYMAP_THREADS.")
    temp_directory: str | None = Field(
        None, description="Where DuckDB spills, relative to the workspace (default: journeymap.duckdb.tmp next to "
                          "the store). Env: JOURNEYMAP_TEMP_DIRECTORY.")
    preserve_insertion_order: bool | None = Field(
        None, description="false lets DuckDB reorder results without ORDER BY and use less memory; DuckDB's "
                          "default, true, is kept unless set (docs/store.md). Env: JOURNEYMAP_PRESERVE_INSERTION_ORDER.")

    checkpoint_threshold: str | None = Field(
        None, description="DuckDB writes a checkpoint once its write-ahead log grows past this: 256MB, 1GiB "
                          "(journeymap's default 256MB; DuckDB's own, 16MB, checkpoints at nearly every refresh of a "
                          "large store). Env: JOURNEYMAP_CHECKPOINT_THRESHOLD.")

    @field_validator("memory_limit", "threads", "temp_directory", "preserve_insertion_order", "checkpoint_threshold",
                     mode="before")
    @classmethod
    def _setting(cls, value: Any, info) -> Any:
        return None if value is None else check_setting(info.field_name, value)


def check_origin(value: str) -> str:
    """A browser origin, lower-cased: scheme http or https, a host, an optional port, nothing else.

    >>> check_origin("https://Shop.example.com:8443")
    'https://shop.example.com:8443'
    >>> check_origin("https://shop.example.com/")
    Traceback (most recent call last):
    ...
    ValueError: 'https://shop.example.com/' is not an origin: an origin has no path, query or fragment; did you mean 'https://shop.example.com'?
    """
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin: write scheme://host[:port], such as https://www.example.com")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} is not an origin: the port is not a number from 0 to 65535") from None
    origin = f"{parts.scheme.lower()}://{parts.hostname}" + (f":{port}" if port is not None else "")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{value!r} is not an origin: an origin has no user name; did you mean {origin!r}?")
    if parts.path or parts.query or parts.fragment or value.strip().endswith(("?", "#")):
        raise ValueError(f"{value!r} is not an origin: an origin has no path, query or fragment; did you mean {origin!r}?")
    return origin


class ServerConfig(_Strict):
    """Settings of `journeymap serve` (docs/server.md)."""

    cors_origins: list[Annotated[str, AfterValidator(check_origin)]] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port], as a browser sends them) whose pages may call the tracking API "
                    "(/v1/*) from the browser: they get CORS headers; any other origin gets none. Default: none.")


REFIT_WORDS = {"daily": "1d", "weekly": "7d", "fortnightly": "14d", "monthly": "30d", "always": "0d"}


def check_refit(value: Any) -> str:
    """A refit schedule: a duration of the data's time such as '7d' ('0d': at every refresh).

    >>> check_refit("2w")
    '2w'
    >>> check_refit("weekly")
    Traceback (most recent call last):
    ...
    ValueError: 'weekly' is not a duration: write a number and one of s, m, h, d, w; did you mean '7d'?
    """

    text = str(value).strip() if isinstance(value, str | int | float) and not isinstance(value, bool) else None
    if text is None:
        raise ValueError(f"{value!r} is not a duration: write a number and one of s, m, h, d, w, e.g. '7d'")
    try:
        parse_duration(text)
    except ValueError:
        word = closest(text, REFIT_WORDS)
        hint = (f"did you mean {REFIT_WORDS[word[0]]!r}?" if word
                else f"did you mean '{text}d' (days)?" if text.replace(".", "", 1).isdigit() else "e.g. '7d'")
        raise ValueError(f"{text!r} is not a duration: write a number and one of s, m, h, d, w; {hint}") from None
    return text


class RiskConfig(_Strict):
    """The churn model behind `journeymap risk` and the map's accounts at risk: fitted at refresh time,
    refitted on a schedule, and every paying account scored at each refresh (docs/metrics/health-and-risk.md)."""

    refit: Annotated[str, BeforeValidator(check_refit)] = Field(
        "7d", description="Refit the churn model once the data's latest event is this much later than the "
                          "data it was fitted on (a duration of the data's time: 1d, 7d, 2w; 0d refits at every "
                          "refresh). Between refits each refresh scores the accounts with the stored model. "
                          "A changed journeymap.yml or model version refits at once.")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    near = did_you_mean(str(key), cls.model_fields)
                    raise ValueError(f"{key!r} is not a risk setting (known: {', '.join(cls.model_fields)})"
                                     + (f"; {near}" if near else ""))
        return data

    @property
    def refit_seconds(self) -> float:
        return parse_duration(self.refit)


EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


class OwnerContact(_Strict):
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


class Retention(_Strict):
    """How long raw data is kept (docs/privacy.md)."""

    raw_events: str | None = Field(
        None, description="Drop raw events older than this on every refresh (ingest, `journeymap refresh`, the "
                          "server's loader), counted back from the latest event's time, not the clock: 400d, 52w. "
                          "The journey state is then that of the retained window. Default: keep everything.")

    @field_validator("raw_events")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError(f"{value!r} must be longer than 0 (e.g. '400d')")
        return value

    @property
    def raw_events_seconds(self) -> float | None:
        return None if self.raw_events is None else parse_duration(self.raw_events)


class Analysis(_Strict):
    level: Literal["person", "account"] = "person"
    timezone: str = "UTC"


class JourneyDefinition(_Strict):
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
