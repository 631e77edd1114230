"""Source mappings: how the columns of a tool's export become canonical events.

A mapping lives under `sources:` in `journeymap.yml` and lets a user load an export without editing it:

    sources:
      stripe:
        source: billing
        fields:
          message_id: id
          account_id: customer
          ts: {column: created, format: unix}
          event: {column: type, map: {customer.subscription.created: subscription_started}}
        properties: [plan, amount, cancellation_reason]

A field is a column name, or an object with one of `column` / `value` (a constant) plus optional
`map` (translate values), `prefix`, `format` (timestamps: iso, unix, unix_ms or a strptime pattern)
and `default`. A row can give several events with `events:` (each with its own event and ts, and
`when:` naming a column that must be non-empty), as a ticket export has created and solved times.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from journeymap.events.schema import CANONICAL_FIELDS, SOURCES


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str | None = None
    value: str | None = None
    map: dict[str, str] | None = None
    prefix: str | None = None
    format: str | None = None
    default: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"column": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _column_or_value(self) -> FieldSpec:
        if (self.column is None) == (self.value is None):
            raise ValueError("give exactly one of column or value")
        return self


class EventSpec(BaseModel):
    """One event made from each row (a row may make several)."""

    model_config = ConfigDict(extra="forbid")

    event: FieldSpec
    ts: FieldSpec
    when: str | None = Field(None, description="Only rows where this column is non-empty give this event.")
    properties: list[str] | None = None


class SourceMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field("other", description=f"The canonical source of these rows: {', '.join(SOURCES)}.")
    format: Literal["csv", "jsonl", "parquet"] | None = Field(None, description="Default: from the file name.")
    delimiter: str = ","
    timezone: str = Field("UTC", description="How to read timestamps that carry no offset.")
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    events: list[EventSpec] | None = None
    properties: list[str] | Literal["rest"] = Field(
        "rest", description="Columns copied into properties; 'rest' means every column no field uses."
    )
    traits: list[str] = Field(default_factory=list, description="Columns copied into traits.")

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        for name in value:
            if name not in CANONICAL_FIELDS:
                raise ValueError(f"unknown canonical field {name!r}; fields are {', '.join(CANONICAL_FIELDS)}")
        return value

    @model_validator(mode="after")
    def _event_and_ts(self) -> SourceMapping:
        if self.events and ("event" in self.fields or "ts" in self.fields):
            raise ValueError("give event and ts either in fields or in events, not both")
        return self

    def event_specs(self) -> list[EventSpec]:
        """The events each row gives; a mapping without `events:` gives one per row."""
        if self.events:
            return self.events
        return [
            EventSpec(
                event=self.fields.get("event", FieldSpec(column="event")),
                ts=self.fields.get("ts", FieldSpec(column="ts")),
            )
        ]

    def used_columns(self) -> set[str]:
        cols = {f.column for f in self.fields.values() if f.column}
        for spec in self.event_specs():
            cols |= {c for c in (spec.event.column, spec.ts.column, spec.when) if c}
        return cols


CANONICAL_ALIASES: dict[str, tuple[str, ...]] = {
    "message_id": ("message_id", "messageId"),
    "ts": ("ts", "timestamp", "time", "originalTimestamp"),
    "event": ("event",),
    "type": ("type",),
    "source": ("source",),
    "channel": ("channel",),
    "user_id": ("user_id", "customer_id", "userId"),
    "anonymous_id": ("anonymous_id", "anonymousId"),
    "email": ("email",),
    "previous_id": ("previous_id", "previousId"),
    "account_id": ("account_id", "groupId", "group_id"),
    "properties": ("properties",),
    "traits": ("traits",),
}
"""The columns the canonical (and Segment-shaped) input may use for each field, in order of preference."""


def mapping_hash(mapping: SourceMapping | None) -> str | None:
    """A short hash of what a mapping says (12 hex digits of SHA-256), stored with each load (`loads.mapping_hash`)
    so `journeymap loads` shows which version of a mapping loaded a file; None for canonical files.

    Key order in journeymap.yml does not change it; any change to a field, a map or the events does.

    >>> a = SourceMapping(source="crm", fields={"user_id": "contact", "ts": "created"})
    >>> b = SourceMapping(fields={"ts": "created", "user_id": "contact"}, source="crm")
    >>> mapping_hash(a) == mapping_hash(b), len(mapping_hash(a)), mapping_hash(None)
    (True, 12, None)
    >>> mapping_hash(a) == mapping_hash(SourceMapping(source="crm", fields={"user_id": "owner", "ts": "created"}))
    False
    """
    if mapping is None:
        return None
    text = json.dumps(mapping.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
