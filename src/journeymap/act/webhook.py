"""Signed webhooks, following the Standard Webhooks convention (https://www.standardwebhooks.com).

Every request carries three headers:

  webhook-id         the outbox row's key: the same on every attempt, so a receiver de-duplicates by it
  webhook-timestamp  seconds since the epoch when this attempt was signed
  webhook-signature  "v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>", keyed by the secret

The secret is never stored: the payload names the environment variable holding it (`secret_env`), whose value
is a "whsec_" followed by the base64 of the key (the form the convention's libraries generate and read).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from journeymap.act.http import check_url, post
from journeymap.act.outcome import Outcome, Refused

PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a "whsec_..." secret (ValueError when it is not base64)."""
    text = secret.strip()
    if text.startswith(PREFIX):
        text = text[len(PREFIX):]
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not a whsec_ secret (whsec_ followed by base64)") from None
    if not key:
        raise ValueError("is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header of `body`.

    >>> sign("whsec_" + base64.b64encode(b"k").decode(), "a/1/1/0", 1700000000, b"{}")
    'v1,Jg5hF3Q/dlNCLji6Qm3uya0eLKTPodqz75hWFYmYZUM='
    """
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def body_of(payload: Mapping) -> bytes:
    return json.dumps(payload.get("body", {}), separators=(",", ":"), sort_keys=True, default=str).encode()


def check(payload: Mapping, env: Mapping[str, str]) -> Refused | str:
    """The secret when the row can be sent, else why not (nothing is sent)."""
    bad = check_url(payload.get("url"))
    if bad is not None:
        return bad
    name = payload.get("secret_env")
    if not isinstance(name, str) or not name:
        return Refused("the payload names no secret_env (the environment variable holding the signing secret)")
    secret = env.get(name)
    if not secret:
        return Refused(f"the signing secret's environment variable {name} is not set; nothing was sent")
    try:
        secret_key(secret)
    except ValueError as exc:
        return Refused(f"the signing secret in {name} {exc}; nothing was sent")
    return secret


def send(key: str, payload: Mapping, env: Mapping[str, str], timeout: float) -> Outcome:
    secret = check(payload, env)
    if isinstance(secret, Refused):
        return secret
    body = body_of(payload)
    timestamp = int(time.time())
    headers = {"webhook-id": key, "webhook-timestamp": str(timestamp),
               "webhook-signature": sign(secret, key, timestamp, body)}
    return post(payload["url"], body, headers, timeout)
