"""The act tables' contract: entries and their outbox rows, idempotency keys, the holdout hash."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from journeymap.act.outbox import Action, Entry, in_holdout, record


def test_record_writes_entries_and_one_outbox_row_per_action():
    con = duckdb.connect()
    now = datetime(2026, 1, 2, 3, 4, 5)
    treated = Entry("nudge", "account", "a1", 1, datetime(2025, 5, 1), False, "Ana", {"rule": "x"},
                    [Action("webhook", {"u": 1}), Action("task", {"t": 2}, delay_seconds=3600)])
    held = Entry("nudge", "account", "a2", 1, datetime(2025, 5, 1), True, "Ana", {"rule": "x"})
    assert record(con, [treated, held], now) == 2
    assert con.execute("SELECT unit_id, holdout, sent FROM act_entries ORDER BY unit_id").fetchall() == [
        ("a1", False, True), ("a2", True, False)]
    assert con.execute("SELECT key, kind, status, due_at FROM act_outbox ORDER BY key").fetchall() == [
        ("nudge/a1/1/0", "webhook", "pending", now), ("nudge/a1/1/1", "task", "pending", datetime(2026, 1, 2, 4, 4, 5))]
    with pytest.raises(duckdb.ConstraintException):
        record(con, [treated], now)  # the same entry twice is an error, never a second firing


def test_holdout_is_stable_and_close_to_its_fraction():
    units = [f"u{i}" for i in range(20000)]
    held = [u for u in units if in_holdout("p", u, 0.1)]
    assert 0.09 < len(held) / len(units) < 0.11
    assert held == [u for u in units if in_holdout("p", u, 0.1)]
    other = {u for u in units if in_holdout("q", u, 0.1)}
    assert 0.005 < len(other & set(held)) / len(units) < 0.015  # independent of another playbook's side
    assert not any(in_holdout("p", u, 0.0) for u in units[:100])
