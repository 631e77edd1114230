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

Every column a mapping names must be in the file: `journeymap ingest` refuses a file up front, naming
the mapping key and the column, with the closest column of the file (`journeymap.ingest.checks`).
`anonymous: true` loads rows that name no person (a survey panel): each such row becomes its own
anonymous respondent, with an `anonymous_id` derived from the file name, the line and the row.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from journeymap.errors import did_you_mean
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
    delimiter: str | None = Field(
        None, description="CSV delimiter (one character, or 'tab'); default: sniffed from the first lines among , ; tab |."
    )
    encoding: str | None = Field(
        None, description="Text encoding (utf-8, cp1252, latin-1, utf-16...); default: UTF-8, or cp1252/latin-1 "
                          "when the first bytes are not UTF-8."
    )
    anonymous: bool = Field(
        False, description="Rows with no user_id, anonymous_id or email each become their own anonymous person "
                           "(anonymous_id derived from the file name, the line and the row), e.g. a survey panel."
    )
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

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        return None if value is None else parse_delimiter(value)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        return None if value is None else parse_encoding(value)

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

    def mapped_columns(self) -> list[tuple[str, str]]:
        """(key under this source in journeymap.yml, column) for every column the mapping reads, in key order.

        A mapping with fields but no event or ts field reads the columns `event` and `ts`; those are
        listed too, as `fields.event (default)` (not `event` when the mapping maps `type`: identify and
        group rows need no event). A mapping with neither fields nor events reads the
        canonical columns, whichever the file has: it names none."""
        out: list[tuple[str, str]] = []
        if self.fields or self.events:
            for name, spec in self.fields.items():
                if spec.column:
                    out.append((f"fields.{name}", spec.column))
            if not self.events:
                for name in ("event", "ts"):
                    if name not in self.fields and not (name == "event" and "type" in self.fields):
                        out.append((f"fields.{name} (default)", name))
        for i, ev in enumerate(self.events or []):
            for name in ("event", "ts"):
                spec = getattr(ev, name)
                if spec.column:
                    out.append((f"events[{i}].{name}", spec.column))
            if ev.when:
                out.append((f"events[{i}].when", ev.when))
            out += [(f"events[{i}].properties", c) for c in ev.properties or []]
        if isinstance(self.properties, list):
            out += [("properties", c) for c in self.properties]
        out += [("traits", c) for c in self.traits]
        return out

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


def parse_delimiter(value: str) -> str:
    """One character; `tab` and `\\t` name the tab.

    >>> parse_delimiter("tab"), parse_delimiter(";")
    ('\\t', ';')
    """
    value = {"tab": "\t", "\\t": "\t", "\t": "\t"}.get(value.lower() if len(value) > 1 else value, value)
    if len(value) != 1 or value in "\r\n\"":
        raise ValueError(f"the delimiter must be one character (such as , ; | or tab), not {value!r}")
    return value


def parse_encoding(value: str) -> str:
    """A text encoding Python knows, by its canonical name.

    >>> parse_encoding("Latin1"), parse_encoding("windows-1252")
    ('iso8859-1', 'cp1252')
    """
    import codecs
    import encodings

    try:
        return codecs.lookup(value).name
    except LookupError:
        known = sorted(set(encodings.aliases.aliases.values()) | {"utf-8", "utf-16", "latin-1", "cp1252"})
        close = did_you_mean(value.lower().replace("-", "_"), known)
        hint = f"; {close}" if close else " (such as utf-8, cp1252, latin-1 or utf-16)"
        raise ValueError(f"unknown encoding {value!r}{hint}") from None
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
