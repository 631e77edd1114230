"""The map's defaults name the planted activation cause on an independent business (tests/independent_saas.py,
not the demo): calendar_synced in week one cuts churn, staff_invited goes with retention only through the
clinic size, reminder_template_edited does nothing. Issue 12 §4: "it does with explicit options; the map's
defaults must too"."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from conftest import invoke_cli, invoke_json
from independent_saas import write

HORIZON = dt.timedelta(days=90)


@pytest.fixture(scope="module")
def pawly(tmp_path_factory):
    root = tmp_path_factory.mktemp("pawly")
    truth = write(root / "src")
    invoke_cli("init", str(root / "ws"))
    shutil.copy(root / "src" / "journeymap.yml", root / "ws" / "journeymap.yml")
    invoke_cli("ingest", str(root / "src" / "events.jsonl"), "--workspace", str(root / "ws"))
    return root / "ws", truth


def test_the_maps_defaults_name_the_planted_cause(pawly):
    ws, _ = pawly
    mot = invoke_json("map", "--workspace", str(ws), "--json")["views"]["all"]["moments_of_truth"]
    act = mot["activation"]
    assert act["behaviour"] == "event:calendar_synced" and act["undecided"] is None
    assert act["definition"] == "activated if they do calendar_synced within 14 days of their start"
    assert act["candidates"] == ["event:calendar_synced"]  # the noise and the persona marker are not candidates
    # One number per fact: `journeymap moments` with the registry's defaults says the same.
    moments = invoke_json("moments", "--workspace", str(ws))
    assert moments["activation"]["behaviour"] == act["behaviour"]
    assert moments["activation"]["definition"] == act["definition"]


def test_the_named_causes_interval_covers_the_truth(pawly):
    """The retention difference at 90 days among paying clinics, counted from the truth the simulator kept."""
    ws, truth = pawly
    end = dt.datetime(2025, 12, 31)
    kept = {True: [0, 0], False: [0, 0]}
    for c in truth["clinics"]:
        start = dt.datetime.fromisoformat(c["start"])
        if not c["paid"] or start + HORIZON > end:
            continue
        churned = c["churn_at"] is not None and dt.datetime.fromisoformat(c["churn_at"]) <= start + HORIZON
        kept[c["synced_week1"]][0] += not churned
        kept[c["synced_week1"]][1] += 1
    truth_diff = kept[True][0] / kept[True][1] - kept[False][0] / kept[False][1]
    moments = invoke_json("moments", "--workspace", str(ws))
    row = next(m for m in moments["moments"] if m["behaviour"] == "event:calendar_synced")
    lo, hi = row["difference_ci"]
    assert lo <= truth_diff <= hi, (truth_diff, row["difference_ci"])
    assert lo > 0  # the planted effect is found, not only covered
