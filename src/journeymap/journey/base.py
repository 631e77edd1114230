"""What every model of journeymap.yml shares: unknown keys refused, and ids people can type."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

ID = re.compile(r"^[a-z][a-z0-9_]*$")


def check_id(value: str) -> str:
    """An id of a stage, touchpoint, persona, feature or survey: lower-case letters, digits and _, from a letter."""
    if not ID.match(value):
        raise ValueError(f"{value!r} is not a valid id: use lower-case letters, digits and _, starting with a letter")
    return value


class StrictModel(BaseModel):
    """A section of journeymap.yml: a key it does not know is an error, never ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
