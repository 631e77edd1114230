"""A Slack-compatible incoming-webhook message: a POST of {"text": ...} (Slack, Mattermost, Rocket.Chat...).

Incoming webhooks have no idempotency header of their own; the key goes in an `Idempotency-Key` header, which
receivers that de-duplicate read, and Slack ignores."""

from __future__ import annotations

import json
from collections.abc import Mapping

from journeymap.act.http import check_url, post
from journeymap.act.outcome import Outcome, Refused


def check(payload: Mapping) -> Refused | None:
    bad = check_url(payload.get("url"))
    if bad is not None:
        return bad
    if not isinstance(payload.get("text"), str) or not payload["text"].strip():
        return Refused("the payload has no text to post")
    return None


def send(key: str, payload: Mapping, env: Mapping[str, str], timeout: float) -> Outcome:
    bad = check(payload)
    if bad is not None:
        return bad
    body = json.dumps({"text": payload["text"]}).encode()
    return post(payload["url"], body, {"Idempotency-Key": key}, timeout)
