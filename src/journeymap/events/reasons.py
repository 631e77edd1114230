"""Typed reasons an event is rejected. Each dead letter carries one, and the field it concerns."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    MISSING_IDENTITY = "missing_identity"
    """No user_id, anonymous_id, email or account_id that names somebody (placeholders do not)."""
    MISSING_EVENT = "missing_event"
    """No event name."""
    BAD_TIMESTAMP = "bad_timestamp"
    """The timestamp is missing or cannot be parsed."""
    ABSURD_TIMESTAMP = "absurd_timestamp"
    """Parsed, but before 1990 or more than a day in the future."""
    BAD_JSON = "bad_json"
    """properties or traits is not a JSON object, or a JSON Lines row is not JSON."""
    OVERSIZED_EVENT = "oversized_event"
    """The event is larger than 32 KB."""
    FIELD_TOO_LONG = "field_too_long"
    """An identifier or the event name is longer than 512 characters."""
    INVALID_SOURCE = "invalid_source"
    """source is not one of product, crm, billing, support, survey, marketing, other."""
    INVALID_TYPE = "invalid_type"
    """type is not a Segment call type."""
    MALFORMED_ROW = "malformed_row"
    """The file row could not be parsed (wrong number of CSV columns, broken quoting)."""
    CONFLICT = "conflict"
    """The message_id was already stored with different content."""
    CONTROL_CHARACTER = "control_character"
    """An identifier or the event name holds a NUL character, which C tools, CSV exports and terminals cut at."""
    ERASED = "erased"
    """The event names a person (or account) erased with `journeymap erase` (ingest/erased.py); never stored."""

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Reason.MISSING_IDENTITY: "no user_id, anonymous_id, email or account_id (placeholders such as 'guest' do not count)",
    Reason.MISSING_EVENT: "the event name is empty",
    Reason.BAD_TIMESTAMP: "the timestamp is missing or cannot be parsed",
    Reason.ABSURD_TIMESTAMP: "the timestamp is before 1990 or more than a day in the future",
    Reason.BAD_JSON: "not a JSON object",
    Reason.OVERSIZED_EVENT: "the event is larger than 32 KB",
    Reason.FIELD_TOO_LONG: "longer than 512 characters",
    Reason.INVALID_SOURCE: "source must be one of product, crm, billing, support, survey, marketing, other",
    Reason.INVALID_TYPE: "type must be one of track, identify, alias, group, page, screen",
    Reason.MALFORMED_ROW: "the row could not be parsed",
    Reason.CONFLICT: "this message_id is already stored with different content",
    Reason.CONTROL_CHARACTER: "an identifier or the event name holds a NUL character",
    Reason.ERASED: "it names a person or account that was erased (journeymap erase); refused, never stored",
}
