"""The CLI's tables at the terminal's width: wide period tables show the periods that fit, whole, and say how
many more there are, instead of squeezing every column to a bare border."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from journeymap.cli import render


def retention_result(periods: int, cohorts: int = 6) -> dict:
    return {"by": "account", "brackets": [], "cohorts": [
        {"start": f"2025-{m + 1:02d}-01", "size": 1000 + m,
         "values": [1000 - k for k in range(periods - m)], "rates": [(1000 - k) / 1000 for k in range(periods - m)]}
        for m in range(cohorts)]}


PARAMS = SimpleNamespace(start="signed_up", return_event="dashboard_viewed", rolling=False, mode="first_time",
                         period="on")


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_retention_shows_the_periods_that_fit_whole_and_says_how_many_more(monkeypatch, capsys, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    render.retention(retention_result(80), PARAMS, None)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns
    heads = re.findall(r"\bP(\d+)\b", next(line for line in lines if "cohort" in line))
    shown = len(heads)
    assert heads == [str(k) for k in range(shown)] and shown >= 2
    note = re.search(r"(\d+) more periods \(P(\d+) to P79\) do not fit", " ".join(lines))
    assert note and int(note.group(1)) == 80 - shown and int(note.group(2)) == shown
    assert all(f"2025-{m + 1:02d}-01" in out for m in range(6))  # the cohorts' dates whole, not '2025-0…'


def test_retention_prints_every_period_when_they_fit(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "1000")
    render.retention(retention_result(12), PARAMS, None)
    out = capsys.readouterr().out
    assert "P11" in out and "more periods" not in out


def test_stickiness_shows_the_day_counts_that_fit(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    result = {"by": "account", "dau_mau": [],
              "intervals": [{"start": f"2025-{m + 1:02d}-01", "units": 40, "distribution": list(range(31))}
                            for m in range(3)]}
    render.stickiness(result, PARAMS, None)
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "2025-03-01" in "\n".join(lines)
    assert re.search(r"\d+ more day counts \(\d+d to 31d\) do not fit 80 columns", " ".join(lines))
