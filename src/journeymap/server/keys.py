"""API keys: write keys for the tracking API, read keys for the JSON API, admin keys for `/api/v1/erase`, operator
keys for acting on what playbooks fired (closing and assigning tasks, re-sending deliveries: docs/delivery.md).

A token is shown once, when it is created; the store keeps only its sha256 (`api_keys.hash`), so a
copy of the store gives nobody a usable key. Tokens are `jm_w_...` (write), `jm_r_...` (read) `jm_a_...` (admin:
erasing a person, docs/privacy.md; an admin key neither writes events nor reads analyses) or `jm_o_...` (operator:
closes and assigns tasks and re-sends deliveries; it reads nothing else)
followed by 32 random bytes, url-safe base64.

The server loads the keys when it starts (`KeyRing.load`). While it runs it holds the store, so the keys
commands ask it (server/admin.py), and it reloads its KeyRing after each change.

>>> import tempfile
>>> from journeymap.ingest.store import open_store
>>> con = open_store(tempfile.mkdtemp())
>>> key, token = create_key(con, "write", "website")
>>> ring = KeyRing.load(con)
>>> ring.verify(token, "write").name, ring.verify(token, "read"), ring.verify("nope", "write")
('website', None, None)
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import duckdb

KINDS = ("write", "read", "admin", "operator")
DDL = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id     VARCHAR PRIMARY KEY,
    kind       VARCHAR NOT NULL,     -- write (tracking API), read (JSON API), admin (erase), operator (tasks, outbox)
    name       VARCHAR NOT NULL,
    hash       VARCHAR NOT NULL,     -- sha256 of the token, hex
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
)
"""


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    kind: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None

    def as_dict(self) -> dict:
        return {"key_id": self.key_id, "kind": self.kind, "name": self.name,
                "created_at": str(self.created_at), "revoked_at": None if self.revoked_at is None else str(self.revoked_at)}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def create_key(con: duckdb.DuckDBPyConnection, kind: str, name: str) -> tuple[ApiKey, str]:
    """A new key and its token (the only time the token is seen)."""
    if kind not in KINDS:
        raise ValueError(f"--kind must be write, read, admin or operator, not {kind!r}")
    if not name.strip():
        raise ValueError("--name must not be empty")
    ensure_table(con)
    token = f"jm_{kind[0]}_{secrets.token_urlsafe(32)}"
    key_id = "k_" + secrets.token_hex(4)
    con.execute(
        "INSERT INTO api_keys VALUES (?, ?, ?, ?, now()::TIMESTAMP, NULL)", [key_id, kind, name, token_hash(token)]
    )
    return _key(con, key_id), token


def list_keys(con: duckdb.DuckDBPyConnection) -> list[ApiKey]:
    ensure_table(con)
    rows = con.execute("SELECT key_id, kind, name, created_at, revoked_at FROM api_keys ORDER BY created_at, key_id").fetchall()
    return [ApiKey(*r) for r in rows]


def revoke_key(con: duckdb.DuckDBPyConnection, key_id: str) -> ApiKey:
    ensure_table(con)
    found = con.execute("SELECT revoked_at FROM api_keys WHERE key_id = ?", [key_id]).fetchall()
    if not found:
        raise ValueError(f"no key {key_id!r}; `journeymap keys list` shows them")
    if found[0][0] is None:
        con.execute("UPDATE api_keys SET revoked_at = now()::TIMESTAMP WHERE key_id = ?", [key_id])
    return _key(con, key_id)


def _key(con: duckdb.DuckDBPyConnection, key_id: str) -> ApiKey:
    row = con.execute("SELECT key_id, kind, name, created_at, revoked_at FROM api_keys WHERE key_id = ?", [key_id]).fetchall()
    return ApiKey(*row[0])


class KeyRing:
    """The keys that are not revoked, by token hash, in memory: verifying costs one sha256."""

    def __init__(self, keys: dict[str, ApiKey]):
        self._by_hash = keys

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection) -> KeyRing:
        ensure_table(con)
        rows = con.execute(
            "SELECT hash, key_id, kind, name, created_at FROM api_keys WHERE revoked_at IS NULL"
        ).fetchall()
        return cls({h: ApiKey(k, kind, name, created) for h, k, kind, name, created in rows})

    def verify(self, token: str | None, kind: str) -> ApiKey | None:
        """The key a token belongs to when it is live and of this kind, else None."""
        if not token:
            return None
        key = self._by_hash.get(token_hash(token))
        return key if key is not None and key.kind == kind else None

    def __len__(self) -> int:
        return len(self._by_hash)


def verify(con: duckdb.DuckDBPyConnection, token: str | None, kind: str) -> ApiKey | None:
    """One-off check against the store (the server uses a KeyRing loaded once)."""
    return KeyRing.load(con).verify(token, kind)
