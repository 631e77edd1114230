"""The server file: how a CLI on this machine finds the `journeymap serve` that holds its workspace.

DuckDB lets one process open the store for writing, and the server holds it while it runs. So that read-only
commands (every analysis, `journeymap keys`) still work, the server writes `journeymap.server.json` into the
workspace once it holds the store: its pid, the address it listens on and a local token (32 random bytes).
The file is created with mode 0600, so only the user who runs the server (and root) can read the token, and
the token is never printed or logged. A request with `Authorization: Bearer TOKEN` is the local admin: it
reads as a read key does, and may manage keys (`/-/keys`, server/admin.py). The file is removed when the
server stops; one left by a server that was killed is harmless, because a CLI uses it only when its pid is
the pid that holds the store's lock (docs/server.md, "CLI commands while the server runs").
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

SERVER_FILE = "journeymap.server.json"
LOCAL_KEY_ID = "local"
"""The key_id the local token verifies as (a read key with admin rights); no stored key has it (theirs are k_...)."""

__all__ = ["LOCAL_KEY_ID", "SERVER_FILE", "LocalServer", "new_token"]


def new_token() -> str:
    return "jm_local_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class LocalServer:
    """A running server as its file describes it."""

    pid: int
    host: str
    port: int
    token: str

    @property
    def url(self) -> str:
        """Where a client on this machine reaches it: a server on every interface at the loopback address."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def write(self, workspace: Path) -> Path:
        """Write the file (mode 0600, replaced atomically: a reader never sees half of it)."""
        path = Path(workspace) / SERVER_FILE
        tmp = path.with_name(f".{SERVER_FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # an old file of the same name keeps its mode under O_CREAT
            os.write(fd, json.dumps(asdict(self)).encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return path

    def remove(self, workspace: Path) -> None:
        """Remove the file if it is still this server's."""
        path = Path(workspace) / SERVER_FILE
        found = read(workspace)
        if found is not None and found.pid == self.pid and found.token == self.token:
            path.unlink(missing_ok=True)

    def __repr__(self) -> str:  # never the token, whatever prints it
        return f"LocalServer(pid={self.pid}, url={self.url!r})"


def read(workspace: str | Path) -> LocalServer | None:
    """The server file of `workspace`, or None when there is none (or it cannot be read: not ours)."""
    try:
        data = json.loads((Path(workspace) / SERVER_FILE).read_text())
        return LocalServer(int(data["pid"]), str(data["host"]), int(data["port"]), str(data["token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def server_holding(workspace: str | Path, holder_pid: int | None) -> LocalServer | None:
    """The server that holds the workspace's store, when the lock's holder is one: its file names the pid that
    holds the lock (`holder_pid`, from DuckDB's lock error; when DuckDB did not say, the file's pid must be alive).
    None when the holder is another process (a CLI command): its file, if any, is a dead server's."""
    found = read(workspace)
    if found is None:
        return None
    if holder_pid is not None:
        return found if found.pid == holder_pid else None
    return found if alive(found.pid) else None
