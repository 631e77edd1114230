"""What one delivery attempt came to, as every channel answers it (act.deliver records it in act_outbox).

  Delivered  the receiver acknowledged (a 2xx, an SMTP 250, the task stored): the row is done
  Retry      a failure that may pass (a 5xx, 408, 429, a timeout, a refused connection): try again after backoff,
             or after `retry_after` seconds when the receiver said so (Retry-After)
  Dead       a failure that will not pass by itself (a 4xx other than 408/429, a rejected address): dead at once
  Refused    nothing was sent: the row cannot be sent as it stands (a non-http(s) URL, a missing secret or SMTP
             setting); dead at once, attempts unchanged, so `journeymap act retry` re-sends it once fixed
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Delivered:
    detail: str = ""


@dataclass(frozen=True)
class Retry:
    error: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Dead:
    error: str


@dataclass(frozen=True)
class Refused:
    error: str


Outcome = Delivered | Retry | Dead | Refused

ANSWER_CHARS = 300
"""How much of a receiver's answer last_error keeps."""


def short(text: str, limit: int = ANSWER_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
