"""`journeymap surveys`: scores by stage, persona and period, with the period-over-period change."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest

from conftest import invoke_cli, invoke_json
from journeymap.engine.survey_report import survey_report
from journeymap.workspace import Workspace

DEFINITION = {
    "stages": [{"id": "trial", "name": "Trial", "entry": "trial_started"},
               {"id": "paid", "name": "Paid", "entry": "subscribed"}],
    "personas": [{"id": "smb", "name": "SMB", "traits": {"employees": {"lt": 50}}},
                 {"id": "ent", "name": "Enterprise", "traits": {"employees": {"gte": 50}}}],
    "surveys": [{"id": "nps", "kind": "nps", "match": "nps_answered"},
                {"id": "nps_short", "kind": "nps", "match": "quick_nps", "scale": [1, 5],
                 "promoter_min": 5, "detractor_max": 3}],
}
# person, employees, day, event, score
ROWS = [
    ("a", 10, 0, "trial_started", None), ("a", 10, 5, "nps_answered", 10),            # trial, January
    ("b", 10, 0, "trial_started", None), ("b", 10, 40, "nps_answered", 3),            # trial, February
    ("c", 99, 0, "trial_started", None), ("c", 99, 2, "subscribed", None),
    ("c", 99, 45, "nps_answered", 9),                                                 # paid, February
    ("d", 99, 0, "trial_started", None), ("d", 99, 41, "quick_nps", 5),               # trial, February: a 1-5 promoter
]
T0 = dt.datetime(2025, 1, 1)


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path / "ws")
    w.path.mkdir()
    (w.path / "journeymap.yml").write_text(json.dumps(DEFINITION))
    with open(tmp_path / "e.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["customer_id", "event", "ts", "type", "traits", "properties"])
        for who, employees, day, event, score in ROWS:
            out.writerow([who, "identify", T0.isoformat(), "identify", json.dumps({"employees": employees}), ""])
            out.writerow([who, event, (T0 + dt.timedelta(days=day)).isoformat(), "track", "",
                          json.dumps({"score": score}) if score is not None else ""])
    w.ingest([str(tmp_path / "e.csv")])
    yield w
    w.close()


def test_by_stage_pools_surveys_each_with_its_own_thresholds(ws):
    rows = {r["value"]: r for r in survey_report(ws.engine, ws.definition, "person", "stage")["rows"]}
    # trial: 10 (promoter), 3 (detractor), 5 on the 1-5 survey (promoter) -> (2 - 1) / 3
    assert rows["trial"]["nps"]["score"] == pytest.approx(100 / 3) and rows["trial"]["nps"]["n"] == 3
    assert rows["paid"]["nps"] == {"score": 100.0, "n": 1, "ci_low": None, "ci_high": None}
    assert list(rows) == ["trial", "paid"]


def test_by_persona_and_by_period_with_change(ws):
    personas = {r["value"]: r["nps"]["score"] for r in survey_report(ws.engine, ws.definition, "person", "persona")["rows"]}
    assert personas == {"smb": 0.0, "ent": 100.0}
    periods = survey_report(ws.engine, ws.definition, "person", "period", "month")["rows"]
    assert [(r["value"], r["nps"]["n"]) for r in periods] == [("2025-01-01", 1), ("2025-02-01", 3)]
    assert periods[1]["change"]["nps"] == pytest.approx(100 / 3 - 100.0)


def test_cli(ws):
    path = str(ws.path)
    ws.close()
    result = invoke_json("surveys", "--workspace", path, "--group", "persona")
    assert [r["value"] for r in result["rows"]] == ["smb", "ent"]
    bad = invoke_cli("surveys", "--workspace", path, "--group", "planet", check=False)
    assert bad.returncode == 2 and "--group must be one of" in bad.stderr
