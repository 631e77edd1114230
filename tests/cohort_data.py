"""The event logs the retention and lifecycle tests share: persons u1-u5 in two accounts, loaded into a real workspace."""

from __future__ import annotations

import csv
import json
import datetime as dt
from pathlib import Path

from journeymap.workspace import Workspace

ACCOUNT = {"u1": "acme", "u2": "acme", "u3": "beta", "u4": "beta", "u5": ""}


def write_workspace(base: Path, rows) -> Workspace:
    """rows: (person, ts, event[, type[, traits]]) in file order, which is seq order."""
    path = base / "events.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "event", "ts", "account_id", "properties", "type", "message_id", "traits"])
        for i, row in enumerate(rows):
            who, ts, event = row[:3]
            traits = json.dumps(row[4]) if len(row) > 4 else ""
            w.writerow([who, event, ts.isoformat() + "Z", ACCOUNT[who], "", row[3] if len(row) > 3 else "track", f"m{i}", traits])
    ws = Workspace.init(base / "ws")
    (report,) = ws.ingest([str(path)])
    assert report.accepted == len(rows)
    return ws


def at(day: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(2024, 1, 1, hour) + dt.timedelta(days=day - 1)  # at(1) is Monday 2024-01-01
