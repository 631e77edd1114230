"""JSON-safe values: JSON has neither NaN nor infinity, and a map or a result that holds one breaks its round trip."""

from __future__ import annotations

import math
from typing import Any


def finite(x: Any) -> Any:
    """NaN and infinities as None, through dicts, lists and tuples (a p-value of a degenerate comparison, an
    empty mean).

    >>> finite({"p": float("nan"), "xs": [1.0, float("inf")]})
    {'p': None, 'xs': [1.0, None]}
    """
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    return x
