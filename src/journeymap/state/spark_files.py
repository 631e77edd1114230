"""The Spark state's files: the journey events by event date, the state by unit bucket, and one manifest.

Layout under a root folder (docs/spark.md, "The journey state on Spark"):

    events/v=N/event_date=D/      journey_events of day D (UTC), written by the store (DuckDB COPY)
    months/v=N/month=M/           journey_events of month M (YYYY-MM, UTC): what the analyses read (state.spark_tables.
                                  journey_files), a few files rather than a file per day
    persons/v=N.parquet, accounts/v=N.parquet
    state_events_L/v=N/bucket=B/  the state of level L for the units whose unit_id hashes to bucket B
    state_visits_L/..., state_units_L/...
    manifest.json                 which folder of each is current, and what each level's state reflects

Every folder is written once under a new serial `N` and never changed; the manifest, replaced atomically
(a rename), is the commit: a refresh killed before it leaves the previous manifest and every file it names,
and the next refresh sweeps what no manifest names. What a commit replaces is kept until the next commit
(`kept` in the manifest), for readers that listed the previous state's files before it. A refresh rewrites
the event dates that its new events fall on and those of the units an identity merge moved (`journey_moves`),
and only the buckets of the units whose state changed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

from journeymap.engine.spark_backend import parquet_select_list
from journeymap.identity.journey_events import MOVES, WHOLE_KEY
from journeymap.ingest.store import has_table

MANIFEST = "manifest.json"
LAYOUT = "1"
"""The layout of the folders and the manifest; another is rebuilt, never read."""
TABLES = ("events", "persons", "accounts")


def read_manifest(root: Path) -> dict:
    """The manifest (empty without one, or with another layout: everything is then written again)."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        return {}
    return manifest if manifest.get("layout") == LAYOUT else {}


def commit(root: Path, manifest: dict) -> None:
    """Replace the manifest in one rename, then remove every folder and file it does not name, but those of the
    manifest it replaces: they stay one refresh longer (`kept`), so that a reader that listed its files before
    this commit still finds them (a query planned on the previous state, a request the server answers while its
    loader folds). The next commit removes them."""
    previous = read_manifest(root)
    manifest["kept"] = sorted(named_paths(previous) - named_paths(manifest)) if previous else []
    _replace(root, manifest)
    sweep(root, manifest)


def drop_kept(root: Path) -> None:
    """Remove now what the last commit kept for readers of the state before it: after `journeymap erase`, nothing
    of the erased may stay on disk, however recent."""
    manifest = read_manifest(root)
    if manifest.get("kept"):
        manifest["kept"] = []
        _replace(root, manifest)
        sweep(root, manifest)


def _replace(root: Path, manifest: dict) -> None:
    tmp = root / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({**manifest, "layout": LAYOUT}, indent=1, sort_keys=True))
    os.replace(tmp, root / MANIFEST)


def named_paths(manifest: dict) -> set[str]:
    """Every folder or file (relative to the root) the manifest names."""
    paths = (set(manifest.get("events", {}).values()) | set(manifest.get("months", {}).values())
             | {manifest[t] for t in ("persons", "accounts") if t in manifest})
    for level in manifest.get("levels", {}).values():
        for buckets in level.get("tables", {}).values():
            paths |= set(buckets.values())
    return paths


def sweep(root: Path, manifest: dict) -> None:
    """Remove what the manifest neither names nor keeps: what a refresh before the last replaced, or what a
    refresh wrote before it was killed."""
    named = named_paths(manifest) | set(manifest.get("kept", []))
    keep = {Path(p).parts[:i] for p in named for i in range(1, len(Path(p).parts) + 1)}
    for table in root.iterdir():
        if not table.is_dir():
            continue
        for version in table.iterdir():
            _prune(root, version, named, keep)


def _prune(root: Path, path: Path, named: set[str], keep: set[tuple]) -> None:
    relative = path.relative_to(root)
    if str(relative) in named:
        return
    if relative.parts not in keep:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        return
    for child in path.iterdir():
        _prune(root, child, named, keep)


def _copy(con, sql: str, target: Path, options: str = "") -> None:
    literal = str(target).replace("'", "''")
    con.execute(f"COPY ({sql}) TO '{literal}' (FORMAT parquet, COMPRESSION zstd{options})")


def dates_past(manifest: dict, mark: int) -> list[str]:
    """The event dates of the manifest that hold an event with a seq above `mark` (by each date's highest seq,
    `events_top`; a date whose highest seq is not known is counted in): where the events past a fold's mark are.

    >>> dates_past({"events": {"2026-01-01": "a", "2026-01-02": "b", "2026-01-03": "c"},
    ...             "events_top": {"2026-01-01": 7, "2026-01-02": 12}}, 10)
    ['2026-01-02', '2026-01-03']
    """
    top = manifest.get("events_top", {})
    return sorted(d for d in manifest["events"] if top.get(d) is None or int(top[d]) > mark)


def export_events(con, root: Path, manifest: dict, serial: int) -> dict:
    """Write the journey events that changed since the manifest's export, by event date, and persons and
    accounts whole; returns the manifest's new `events`, `events_top` (each date's highest seq: the fold reads
    only the dates past its mark for the new events), `persons`, `accounts`, `events_seq` and `events_journey`
    (nothing is committed here).

    The dates rewritten are those of the events past the last export's highest seq, and those of every event of
    a unit that `journey_moves` lists since the last export's journey version (an identity merge rewrote those
    events' person_id or account_id). When the store wrote journey_events whole since (an unload, an erase,
    retention, a new salt), or there is no export yet (or one without `events_top` or `months`), every date is
    written.

    The same events are written by month too (`months`: the months of the dates rewritten, each month whole): the
    analyses read the journey events from those, a few files rather than one per day, whose opening each query
    would pay (docs/benchmarks.md, "Listing the event dates on Spark")."""
    known = dict(con.execute("SELECT key, value FROM meta").fetchall())
    version = int(known.get("journey.version", 0))
    whole = (not manifest.get("events") or manifest.get("events_journey") is None or "events_top" not in manifest
             or "months" not in manifest or int(known.get(WHOLE_KEY) or version) > int(manifest["events_journey"]))
    select = parquet_select_list(con, "journey_events")
    if whole:
        con.execute("CREATE OR REPLACE TEMP TABLE _spark_dates AS SELECT DISTINCT ts::DATE AS d FROM journey_events")
    else:
        since, past = int(manifest["events_journey"]), int(manifest.get("events_seq") or -1)
        moved = (f"OR person_id IN (SELECT unit_id FROM {MOVES} WHERE level = 'person' AND version > $since) "
                 f"OR account_id IN (SELECT unit_id FROM {MOVES} WHERE level = 'account' AND version > $since)"
                 if has_table(con, MOVES) else "")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _spark_dates AS SELECT DISTINCT ts::DATE AS d FROM journey_events "
                    f"WHERE seq > $past {moved}", {"past": past, "since": since} if moved else {"past": past})
    dates = [str(d) for (d,) in con.execute("SELECT d FROM _spark_dates ORDER BY d").fetchall()]
    events = {} if whole else dict(manifest["events"])
    top = {} if whole else {d: t for d, t in manifest.get("events_top", {}).items() if d in events}
    months = {} if whole else dict(manifest["months"])
    if dates:
        # literal bounds first: row groups outside them are skipped unread (a refresh's dates are mostly the last few)
        first, last = dt.date.fromisoformat(dates[0]), dt.date.fromisoformat(dates[-1])
        after = dt.date(last.year + last.month // 12, last.month % 12 + 1, 1)
        folder = root / "months" / f"v={serial}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        _copy(con, f"SELECT {select}, strftime(ts, '%Y-%m') AS month FROM journey_events "
                   f"WHERE ts >= '{first.replace(day=1)}' AND ts < '{after}' AND date_trunc('month', ts::DATE) "
                   "IN (SELECT DISTINCT date_trunc('month', d) FROM _spark_dates) ORDER BY seq", folder,
              ", PARTITION_BY (month)")
        months.update({m: f"months/v={serial}/month={m}" for m in sorted({d[:7] for d in dates})})
        folder = root / "events" / f"v={serial}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        _copy(con, f"SELECT {select}, strftime(ts, '%Y-%m-%d') AS event_date FROM journey_events "
                   f"WHERE ts >= '{first}' AND ts < '{last + dt.timedelta(days=1)}' "
                   "AND ts::DATE IN (SELECT d FROM _spark_dates) ORDER BY seq", folder, ", PARTITION_BY (event_date)")
        events.update({d: f"events/v={serial}/event_date={d}" for d in dates})
        top.update({str(d): t for d, t in con.execute(
            "SELECT ts::DATE, max(seq) FROM journey_events WHERE ts::DATE IN (SELECT d FROM _spark_dates) "
            "GROUP BY ALL").fetchall()})
    con.execute("DROP TABLE _spark_dates")
    out = {"events": events, "events_top": top, "months": months, "events_journey": version,
           "events_seq": con.execute("SELECT max(seq) FROM journey_events").fetchall()[0][0]}
    for table in ("persons", "accounts"):
        (root / table).mkdir(parents=True, exist_ok=True)
        _copy(con, f"SELECT {parquet_select_list(con, table)} FROM main.\"{table}\"", root / table / f"v={serial}.parquet")
        out[table] = f"{table}/v={serial}.parquet"
    return out
