"""The journey state folded by Spark jobs (state.spark_fold) equals the one DuckDB folds (state.fold), batch by batch.

The demo business is loaded into a fresh store in batches that take every path of the fold: the first 60% of its
history (a rebuild), the rest split by seq parity into two batches (new customers, appended events, late events
for units already folded, identity merges), an unchanged refresh, and events deleted below the mark (the store
writes the journey events whole, so both folds compare every unit). After each batch the store stitches and
folds with DuckDB, Spark folds the same store, and every row of both states must agree (the signature aside:
each engine hashes seq with its own function). One fold is killed before its commit on the way: readers see
the previous state, and the next fold completes the work and sweeps what the killed one wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from journeymap.engine.unit_events import LEVELS
from journeymap.state.spark_files import MANIFEST, dates_past, export_events, named_paths, read_manifest
from journeymap.state.spark_fold import BUCKETS, read_state, spark_fold
from journeymap.workspace import Workspace

pytestmark = pytest.mark.spark

NAMES = ("events", "visits", "units")


def rows(table, drop=("signature", "bucket")) -> list[tuple]:
    """The rows of an Arrow table as sorted tuples of text (column order and types aside)."""
    columns = sorted(c for c in table.column_names if c not in drop)
    # column by column: a dict per row cost seconds per test run on the demo's states
    return sorted(zip(*([str(v) for v in table.column(c).to_pylist()] for c in columns), strict=True))


def duckdb_state(ws, level, name):
    return rows(ws.con.sql(f"SELECT * FROM state_{name}_{level}").to_arrow_table())


def spark_state(session, root, level, name):
    return rows(read_state(session, root, level, name).toArrow())


def buckets_of(session, unit_ids) -> set[int]:
    """Spark's bucket of each unit id, computed apart from the fold."""
    if not unit_ids:
        return set()
    df = session.createDataFrame([(u,) for u in unit_ids], "unit_id string")
    return {r[0] for r in df.selectExpr(f"pmod(xxhash64(unit_id), {BUCKETS})").collect()}


_UNIT = sorted(("unit_id", "persona", "events", "last_ts", "last_seq", "last_visit_no", "last_stage", "last_entered_at",
                "last_entry_seq")).index("unit_id")
"""Where unit_id is in a row of state_units as `rows` gives it (columns by name, the signature left out)."""


def changed_units(before: list[tuple], after: list[tuple]) -> set[str]:
    """The units whose state_units row differs between two folds (or is in one only)."""
    return {r[_UNIT] for r in set(before) ^ set(after)}


def test_the_spark_fold_equals_the_duckdb_fold_batch_by_batch(ingested_demo, spark_session, tmp_path, monkeypatch):
    demo = ingested_demo(60, 7)
    ws = Workspace.init(tmp_path / "ws")
    ws.definition_path.write_text(Path(demo.definition).read_text())
    ws.__dict__.pop("definition", None)
    root = tmp_path / "spark_state"
    with ws:
        ws.con.execute(f"ATTACH '{Path(demo.workspace) / 'journeymap.duckdb'}' AS demo (READ_ONLY)")
        # The demo's 18 months pressed into a quarter of the time: every event and journey kept, on 138 event
        # dates instead of 544. Each date is a folder Spark lists, reads and writes, and the fold's cost here is
        # per folder (a few ms each), not per row: this test took 122 s on the whole calendar, 92 s pressed.
        ws.con.execute("""CREATE TEMP TABLE demo_events AS SELECT e.* REPLACE (
                              f.lo + to_microseconds((epoch_us(e.ts) - epoch_us(f.lo)) // 4) AS ts)
                          FROM demo.events e, (SELECT min(ts) AS lo FROM demo.events) f""")
        lo, hi = ws.con.execute("SELECT min(ts), max(ts) FROM demo_events").fetchone()
        cut = lo + (hi - lo) * 0.6
        batches = [("ts < ?", [cut]), ("ts >= ? AND seq % 2 = 0", [cut]), ("ts >= ? AND seq % 2 = 1", [cut]),
                   (None, None), ("delete", None)]
        seen = []
        for n, (where, args) in enumerate(batches):
            units_before = {lv: duckdb_state(ws, lv, "units") for lv in LEVELS} if n else {}
            # a reader that lists the state's files before the fold commits (a query planned on it, a request the
            # server answers while its loader folds) reads them after: the commit keeps what it replaces a while
            readers = {lv: (read_state(spark_session, root, lv, "units"), spark_state(spark_session, root, lv, "units"))
                       for lv in LEVELS} if n == 1 else {}
            events_before = {lv: duckdb_state(ws, lv, "events") for lv in LEVELS} if n else {}
            exported_seq = read_manifest(root).get("events_seq")
            if where == "delete":
                ws.con.execute("DELETE FROM events WHERE seq % 23 = 0")
            elif where:
                ws.con.execute(f"INSERT INTO events SELECT * REPLACE (seq + {n * 10**15} AS seq) FROM demo_events "
                               f"WHERE {where}", args)
            before = read_manifest(root)
            duck = ws.refresh().state
            moved = _moved_dates(ws, before) if n and where != "delete" else set()  # read before Spark forgets them
            if n == 2:
                _killed_before_commit(spark_session, ws, root, monkeypatch)
            folded = spark_fold(spark_session, ws.con, ws.definition, root)
            after = read_manifest(root)
            # the manifest knows each date's highest seq, and a level reads its new events from the dates that hold
            # an event past its mark (an identity call or an event of no unit counts too), and from no other
            assert after["events_top"] == {str(d): top for d, top in ws.con.execute(
                "SELECT ts::DATE, max(seq) FROM journey_events GROUP BY ALL").fetchall()}
            for level in before.get("levels", {}).values():
                assert dates_past(after, level["seq"]) == sorted(str(d) for (d,) in ws.con.execute(
                    "SELECT DISTINCT ts::DATE FROM journey_events WHERE seq > ?", [level["seq"]]).fetchall())
            for d, s in zip(duck.levels, folded.levels, strict=True):
                # the same units changed, for the same reasons
                assert (s.level, s.mode, s.units, s.changed_units, s.appended_units, s.new_units, s.late_units,
                        s.looked_at) == (d.level, d.mode, d.units, d.changed_units, d.appended_units, d.new_units,
                                         d.late_units, d.looked_at), n
                for name in NAMES:
                    assert spark_state(spark_session, root, d.level, name) == duckdb_state(ws, d.level, name), \
                        (n, d.level, name)
            seen.append([(lv.mode, lv.looked_at, lv.late_units > 0) for lv in folded.levels])
            for level, (reader, rows_then) in readers.items():
                assert rows(reader.toArrow()) == rows_then
                replaced = set(before["levels"][level]["tables"]["units"].values()) - set(
                    after["levels"][level]["tables"]["units"].values())
                assert replaced and replaced <= set(after["kept"]) and all((root / p).exists() for p in replaced)
            if n == 2:  # and the next commit removes what the one before kept
                assert not any((root / p).exists() for p in before["kept"]) and before["kept"]
            if not n:
                continue
            # only the event dates with new events (or moved units' events) were written again
            new_dates = {str(d) for (d,) in ws.con.execute(
                "SELECT DISTINCT ts::DATE FROM journey_events WHERE seq > ?", [exported_seq]).fetchall()}
            rewritten = {d for d, f in after["events"].items() if before["events"].get(d) != f}
            if where == "delete":
                assert set(after["events"]) == rewritten  # written whole
            else:
                assert rewritten == new_dates | moved
            # and only the folders that hold a row of a unit whose state changed: for the visits and the units the
            # buckets of those units, for the events the dates of their events, at least every date where a row differs
            for level in LEVELS:
                changed = changed_units(units_before[level], duckdb_state(ws, level, "units"))
                for name in NAMES:
                    old, new = before["levels"][level]["tables"][name], after["levels"][level]["tables"][name]
                    rewritten = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
                    if name == "events":
                        differ, theirs = _event_dates(events_before[level], duckdb_state(ws, level, "events"), changed)
                        assert differ <= rewritten <= theirs, (n, level)
                        continue
                    assert {int(b) for b in rewritten} <= buckets_of(spark_session, changed), (n, level, name)
                    if name == "units":
                        assert {int(b) for b in rewritten} == buckets_of(spark_session, changed), (n, level)
            if where is None:  # nothing changed: no date, no bucket written
                assert after["events"] == before["events"]
                assert all(after["levels"][lv]["tables"] == before["levels"][lv]["tables"] for lv in LEVELS)
    assert seen[0] == [("rebuild", "all", False)] * 2
    assert seen[1] == [("fold", "named", False)] * 2
    assert [late for _, _, late in seen[2]] == [True, True]  # the odd half of the same days came late
    assert [mode for mode, _, _ in seen[3]] == ["unchanged"] * 2
    assert seen[4] == [("fold", "all", False)] * 2
    # nothing the manifest does not name or keep is left on disk: what the killed fold wrote was swept
    assert all(_named(root, after, [p for p in _files(root) if not p.name.startswith(("_", ".")) and p.name != MANIFEST]))
    # and Spark wrote no checksum file beside its Parquet (spark_backend.LOCAL_FILES, as the tests' session sets it)
    assert not [p for p in _files(root) if p.name.endswith(".crc")]
    # every event gone (an unload of everything): no state is left to read, and no event date but those kept for
    # the readers of the state before, which the next commit removes
    with Workspace(tmp_path / "ws") as ws:
        ws.con.execute("DELETE FROM events")
        ws.refresh()
        assert spark_fold(spark_session, ws.con, ws.definition, root).levels == []
        emptied = read_manifest(root)
        assert (emptied["events"], emptied["levels"]) == ({}, {})
        left = list((root / "events").rglob("*.parquet"))
        assert left and all(_named(root, emptied, left))
        assert spark_fold(spark_session, ws.con, ws.definition, root).levels == []
    assert not list((root / "events").rglob("*.parquet"))


_EVENT_COLUMNS = sorted(("unit_id", "ts", "seq", "event", "source", "channel", "stage_hit", "touchpoint", "properties",
                         "persona", "current_stage", "stage_before"))


def _event_dates(before: list[tuple], after: list[tuple], units: set[str]) -> tuple[set[str], set[str]]:
    """(the dates of the state_events rows that differ between two folds, the dates of every row of `units`)."""
    unit, ts = _EVENT_COLUMNS.index("unit_id"), _EVENT_COLUMNS.index("ts")
    return ({r[ts][:10] for r in set(before) ^ set(after)},
            {r[ts][:10] for r in [*before, *after] if r[unit] in units})


def _moved_dates(ws, before) -> set[str]:
    """The dates of the events of the units moved since the last export (an identity merge): the only other
    reason a date is written again."""
    since = before["events_journey"]
    return {str(d) for (d,) in ws.con.execute(
        "SELECT DISTINCT ts::DATE FROM journey_events WHERE "
        "person_id IN (SELECT unit_id FROM journey_moves WHERE level = 'person' AND version > ?) OR "
        "account_id IN (SELECT unit_id FROM journey_moves WHERE level = 'account' AND version > ?)",
        [since, since]).fetchall()}


def _files(root: Path):
    return [p for p in root.rglob("*") if p.is_file()]


def _named(root: Path, manifest: dict, paths: list[Path]) -> list[bool]:
    """For each path, whether it is the manifest or under a folder or file it names (spark_files.named_paths) or
    keeps."""
    names = named_paths(manifest) | set(manifest.get("kept", [])) | {MANIFEST}
    return [any(str(p) in names for p in (relative, *relative.parents)) for relative in
            (path.relative_to(root) for path in paths)]


def _killed_before_commit(session, ws, root: Path, monkeypatch) -> None:
    """A fold killed before the manifest's rename (its commit) leaves the previous manifest and state readable;
    its folders are on disk but named by nothing, and the next fold sweeps them."""
    import journeymap.state.spark_fold as spark_fold_module

    committed = (root / MANIFEST).read_text()
    previous = {(lv, name): spark_state(session, root, lv, name) for lv in LEVELS for name in NAMES}

    def killed(root, manifest):
        raise KeyboardInterrupt("kill -9 before the manifest's rename")

    monkeypatch.setattr(spark_fold_module, "commit", killed)
    with pytest.raises(KeyboardInterrupt):
        spark_fold(session, ws.con, ws.definition, root)
    monkeypatch.undo()
    assert (root / MANIFEST).read_text() == committed
    assert {(lv, name): spark_state(session, root, lv, name) for lv in LEVELS for name in NAMES} == previous
    manifest = json.loads(committed)
    assert not all(_named(root, manifest, [p for p in _files(root) if not p.name.startswith(("_", "."))]))


def test_a_fold_of_new_customers_and_appended_events_reads_no_other_day(spark_session, tmp_path, monkeypatch):
    """A day of new customers and of events after a customer's last: every unit it changes is new (read from the
    day's events) or appended (from its cut in the state), so no statement of the fold reads the history's events
    (`journey_events`, every date's folder, which the fold still lists). Nor does a level with no unit yet (no
    account before day 3): its mark is the highest event looked at. An identity merge that joins two customers
    needs the merged one's whole history, and reads it."""
    import datetime as dt
    import re

    base = dt.datetime(2025, 1, 1)
    ws = Workspace.init(tmp_path / "ws")
    (ws.path / "journeymap.yml").write_text(json.dumps({
        "analysis": {"level": "person"},
        "stages": [{"id": "trial", "name": "Trial", "entry": {"event": "signed_up"}},
                   {"id": "active", "name": "Active", "entry": {"event": "used"}}]}))
    ws.__dict__.pop("definition", None)
    root = tmp_path / "spark_state"
    statements: list[str] = []
    planned = spark_session.sql
    monkeypatch.setattr(spark_session, "sql", lambda q, *a, **k: statements.append(q) or planned(q, *a, **k))

    def day(n: int, batch: list[tuple[str, str, str, str]]) -> list:
        """Load `batch` (user_id, anonymous_id, account_id, event) on day `n`, stitch and fold with DuckDB, then
        fold on Spark; the states must agree."""
        csv = tmp_path / f"day{n}.csv"
        csv.write_text("user_id,anonymous_id,account_id,event,ts,source,message_id\n" + "".join(
            f"{u},{anon},{a},{e},{(base + dt.timedelta(days=n, minutes=k)).isoformat()}Z,product,d{n}-{k}\n"
            for k, (u, anon, a, e) in enumerate(batch)))
        ws.ingest([str(csv)])
        statements.clear()
        folded = spark_fold(spark_session, ws.con, ws.definition, root)
        for d, s in zip(ws.last_refresh.state.levels, folded.levels, strict=True):
            assert (s.mode, s.changed_units, s.new_units, s.appended_units, s.looked_at) == \
                (d.mode, d.changed_units, d.new_units, d.appended_units, d.looked_at)
            for name in NAMES:
                theirs = read_state(spark_session, root, d.level, name)  # none yet for a level with no unit
                assert (rows(theirs.toArrow()) if theirs is not None else []) == duckdb_state(ws, d.level, name)
        return [(lv.level, lv.mode, lv.new_units, lv.appended_units, lv.changed_units) for lv in folded.levels]

    reads_history = re.compile(r"\bjourney_events\b")
    with ws:
        day(0, [("ann", "", "", "signed_up"), ("", "visitor-9", "", "signed_up")])
        assert day(1, [("ann", "", "", "used")]) == [("person", "fold", 0, 1, 1), ("account", "unchanged", 0, 0, 0)]
        assert not [q for q in statements if reads_history.search(q)]
        # a new customer, and ann's events after her last: the day's folder and the state, nothing older
        assert day(3, [("bo", "", "globex", "signed_up"), ("ann", "", "", "used")]) == [
            ("person", "fold", 1, 1, 2), ("account", "fold", 1, 0, 1)]
        assert statements and not [q for q in statements if reads_history.search(q)]
        # visitor-9 identifies as bo: the merged person is folded again from every one of its events
        merged = day(4, [("bo", "visitor-9", "globex", "identify")])
        assert [lv.looked_at for lv in ws.last_refresh.state.levels] == ["named", "named"]
    assert merged[0][:2] == ("person", "fold") and merged[0][4] > merged[0][3]  # changed, not only appended
    assert [q for q in statements if reads_history.search(q)]


def test_an_export_without_each_dates_highest_seq_is_written_whole(ingested_demo, tmp_path):
    """A manifest written before `events_top` existed knows no date's highest seq: its next export writes every
    date (and knows them all), so that no fold reads every date for its new events from then on."""
    import duckdb

    with duckdb.connect(str(tmp_path / "store.duckdb")) as con:
        con.execute(f"ATTACH '{Path(ingested_demo(60, 7).workspace) / 'journeymap.duckdb'}' AS demo (READ_ONLY)")
        for table in ("meta", "journey_events", "persons", "accounts"):
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM demo.{table}")
        dates = {str(d): top for d, top in con.execute(
            "SELECT ts::DATE, max(seq) FROM journey_events GROUP BY ALL").fetchall()}
        first = export_events(con, tmp_path / "state", {}, 1)
        assert first["events_top"] == dates and set(first["events"]) == set(dates)
        assert export_events(con, tmp_path / "state", first, 2)["events"] == first["events"]  # nothing new: none written
        older = {k: v for k, v in first.items() if k != "events_top"}
        again = export_events(con, tmp_path / "state", older, 3)
    assert again["events_top"] == dates and all(f.startswith("events/v=3/") for f in again["events"].values())
    assert dates_past(older, 10**18) == sorted(dates)  # and a fold on the older manifest would read every date


def test_the_events_by_month_are_the_stores_and_only_changed_months_are_written_again(ingested_demo, tmp_path):
    """The journey events the analyses read, by month: each month's folder holds exactly the store's events of
    that month; after a late event, the next export writes that event's date and month again, and no other."""
    import duckdb

    with duckdb.connect(str(tmp_path / "store.duckdb")) as con:
        con.execute(f"ATTACH '{Path(ingested_demo(60, 7).workspace) / 'journeymap.duckdb'}' AS demo (READ_ONLY)")
        for table in ("meta", "journey_events", "persons", "accounts"):
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM demo.{table}")
        root = tmp_path / "state"

        def same_as_store(manifest: dict) -> None:
            for month, folder in manifest["months"].items():
                written = con.execute(f"SELECT list(seq ORDER BY seq) FROM read_parquet('{root / folder}/*.parquet')"
                                      ).fetchall()
                store = con.execute("SELECT list(seq ORDER BY seq) FROM journey_events WHERE strftime(ts, '%Y-%m') = ?",
                                    [month]).fetchall()
                assert written == store and store[0][0], month

        first = export_events(con, root, {}, 1)
        months = {m for (m,) in con.execute("SELECT DISTINCT strftime(ts, '%Y-%m') FROM journey_events").fetchall()}
        assert set(first["months"]) == months and len(months) > 12
        same_as_store(first)
        late = con.execute("SELECT ts FROM journey_events ORDER BY ts LIMIT 1 OFFSET 10000").fetchall()[0][0]
        con.execute("INSERT INTO journey_events SELECT * REPLACE ((SELECT max(seq) + 1 FROM journey_events) AS seq, "
                    "? AS ts) FROM journey_events LIMIT 1", [late])
        con.execute("UPDATE meta SET value = (value::BIGINT + 1)::VARCHAR WHERE key = 'journey.version'")
        second = export_events(con, root, {**first, "serial": 1}, 2)
    assert {m for m, f in second["months"].items() if f.startswith("months/v=2/")} == {late.strftime("%Y-%m")}
    assert {d for d, f in second["events"].items() if f.startswith("events/v=2/")} == {str(late.date())}
    assert {m: f for m, f in second["months"].items() if not f.startswith("months/v=2/")} == {
        m: f for m, f in first["months"].items() if m != late.strftime("%Y-%m")}
    with duckdb.connect(str(tmp_path / "store.duckdb")) as con:
        same_as_store(second)


def test_a_uri_engine_path_gets_no_spark_state_and_says_why(tmp_path):
    """An object-store `engine.path` cannot take the store's local writes nor a rename as commit: the refresh
    says so (and starts no Spark session to find out)."""
    from journeymap.journey.settings import EngineConfig
    from journeymap.state.spark_fold import fold_workspace

    class Definition:
        engine = EngineConfig(backend="spark", master="local[2]", path="s3a://lake/journey")

    report, note = fold_workspace(None, tmp_path, Definition())
    assert report is None
    assert "s3a://lake/journey" in note and "not folded on Spark" in note


def test_the_servers_loader_folds_the_spark_state_after_each_load(spark_session, tmp_path):
    """A served Spark workspace: events sent to the tracking API are loaded and stitched by the server's loader,
    which then folds the Spark state (not a DuckDB state) and writes the journey tables by month: once the server has
    stopped, the Spark state is current and holds the new person, and no DuckDB state was written."""
    import datetime as dt

    from conftest import invoke_json, serve_in_process

    base = dt.datetime(2025, 1, 1)
    ws = Workspace.init(tmp_path / "ws")
    (ws.path / "journeymap.yml").write_text(json.dumps({
        "analysis": {"level": "person"}, "engine": {"backend": "spark", "master": "local[2]"},
        "stages": [{"id": "trial", "name": "Trial", "entry": {"event": "signed_up"}},
                   {"id": "active", "name": "Active", "entry": {"event": "used"}}]}))
    csv = tmp_path / "a.csv"
    csv.write_text("customer_id,event,ts,source,message_id\n"
                   f"ann,signed_up,{base.isoformat()}Z,product,m1\nann,used,{(base + dt.timedelta(days=1)).isoformat()}Z,"
                   "product,m2\n")
    with ws:
        ws.ingest([str(csv)])
        assert [lv.mode for lv in ws.last_refresh.spark_state.levels] == ["rebuild", "rebuild"]
    token = invoke_json("keys", "create", "--kind", "write", "--name", "app", "--workspace", str(ws.path))["token"]
    later = (base + dt.timedelta(days=3)).isoformat() + "Z"
    batch = [{"type": "track", "userId": "bo", "event": "signed_up", "timestamp": later, "messageId": "s1"},
             {"type": "track", "userId": "ann", "event": "used", "timestamp": later, "messageId": "s2"},
             {"type": "track", "userId": "quinn-7f3e", "event": "signed_up", "timestamp": later, "messageId": "s3"}]
    with serve_in_process(ws.path, segment_seconds=0.1, stitch_seconds=0.1) as http:
        assert http.post("/v1/batch", json={"batch": batch, "writeKey": token}).status_code == 200
    with Workspace(ws.path) as served:
        assert all(row["current"] for row in served.state()), served.state()
        units = {r["unit_id"]: r["events"] for r in read_state(spark_session, ws.path / "data" / "spark" / "state",
                                                                 "person", "units").collect()}
        assert units == {"u:ann": 3, "u:bo": 1, "u:quinn-7f3e": 1}
        assert not served.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'state_%'").fetchone()[0]
        # an erase folds the state without her; what that fold replaced (her rows among them), which a fold keeps for
        # the readers of the state before it, goes at once
        served.erase(person="quinn-7f3e")
        root = ws.path / "data" / "spark"
        assert read_manifest(root / "state")["kept"] == []
        for path in root.rglob("*.parquet"):
            table = pq.read_table(path)
            for name in table.column_names:
                if pa.types.is_string(table.schema.field(name).type):
                    assert not any("quinn-7f3e" in v for v in table.column(name).to_pylist() if v), (path, name)
