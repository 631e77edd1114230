"""The one JSON encoder of the server: what the CLI's `--json` prints, compact, never a bare NaN.

>>> dumps({"a": float("nan"), "when": __import__("datetime").date(2026, 1, 2)})
b'{"a": null, "when": "2026-01-02"}'
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

from journeymap.analyses.base import to_json

__all__ = ["JSONAnswer", "dumps", "plain"]


def dumps(data: Any) -> bytes:
    return to_json(data).encode("utf-8")


def plain(data: Any) -> Any:
    """JSON-safe Python values: what a client decodes from `dumps(data)`."""
    return json.loads(dumps(data))


class JSONAnswer(JSONResponse):
    """A JSON response encoded by `dumps`."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
