"""Churn risk and health at refresh time (insights.risk.stored): the model (and the health weights, on its
snapshots) is refitted on the schedule of `risk.refit` (the data's time) or when journeymap.yml changes, every
paying account is scored at each refresh, and `journeymap risk` and `journeymap health` with their defaults and
the map read those scores without fitting a model or computing a snapshot.

On a small simulated business (300 accounts): refreshed once by a module fixture, copied by each test."""

from __future__ import annotations

import json
import pickle
import shutil

import pandas as pd
import pytest
import yaml
from conftest import invoke_cli, invoke_json

from journeymap.insights.risk import churn_model
from journeymap.insights.risk.churn_model import extra_features, ranked_accounts, risk_report, scoring_frame
from journeymap.insights.risk import feature_state
from journeymap.insights.risk import features as features_module
from journeymap.insights.risk.health import health_report
from journeymap.insights.risk.stored import DEFAULTS, HEALTH, MODELS, SCORES
from journeymap.errors import DefinitionError
from journeymap.journey.load import load_definition
from journeymap.workspace import Workspace

# One xdist worker runs the module: spread over two, each simulated, loaded and refreshed the business (`base`).
pytestmark = pytest.mark.xdist_group("risk-state")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The simulated business ingested and refreshed once (the first model fitted); the store closed."""
    from journeymap.demo import simulate

    out = simulate(tmp_path_factory.mktemp("risk-state") / "ws", accounts=300, seed=3)
    ws = Workspace(out.workspace)
    try:
        for path, mapping in out.files:
            ws.ingest([str(path)], source=mapping, refresh=False)
        first = ws.refresh().risk
    finally:
        ws.close()
    return out.workspace, first


@pytest.fixture
def ws_path(base, tmp_path):
    dest = tmp_path / "ws"
    shutil.copytree(base[0], dest)
    return dest


def _later(ws_path, days: int, n: int = 6):
    """A canonical Parquet file of `n` product events copied from the last day's, moved so that the data's
    latest event is `days` days later than now."""
    product = pd.read_parquet(ws_path / "data" / "product_events.parquet")
    track = product[product["type"] == "track"].sort_values("ts").tail(n).copy()
    shift = pd.Timedelta(days=days)
    track["ts"] = track["ts"] + shift
    track["message_id"] = [f"later{days}_{i}" for i in range(len(track))]
    path = ws_path / "data" / f"later_{days}d.parquet"
    track.to_parquet(path, index=False)
    return path


def _stored(ws: Workspace) -> list[tuple]:
    return ws.con.execute(f"SELECT unit_id, risk, mrr, stage, reasons, model_version, scored_at FROM {SCORES} "
                          "ORDER BY rank").fetchall()


def _direct(ws: Workspace) -> tuple[list[dict], object]:
    """Every paying account scored now with the newest stored model, outside the refresh."""
    ((blob,),) = ws.con.execute(f"SELECT model FROM {MODELS} ORDER BY version DESC LIMIT 1").fetchall()
    engine, d = ws.engine, ws.definition
    with engine.scope():
        now, at, _ = scoring_frame(engine, d, extra_features(engine, d))
    return ranked_accounts(pickle.loads(blob), now)[0], at


def _same_accounts(stored: list[tuple], accounts: list[dict]) -> None:
    assert [r[0] for r in stored] == [a["unit_id"] for a in accounts]
    assert [r[1] for r in stored] == [a["risk"] for a in accounts]  # exactly: the same model on the same rows
    assert [json.loads(r[4]) for r in stored] == [a["reasons"] for a in accounts]
    assert [(r[2], r[3]) for r in stored] == [(a["mrr"], a["stage"]) for a in accounts]


def test_the_first_refresh_fits_a_model_and_scores_every_paying_account(ws_path, base):
    first = base[1]
    assert first.model == "refitted" and first.reason == "no model yet" and first.model_version == 1
    assert first.scored_at.startswith("2026-11-01") and first.trained_through == first.scored_at
    with Workspace(ws_path) as ws:
        rows = ws.con.execute(f"SELECT version, options, split, evaluation, octet_length(model) FROM {MODELS}").fetchall()
        assert len(rows) == 1
        version, options, split, evaluation, size = rows[0]
        assert json.loads(options)["horizon_days"] == 90 and json.loads(options)["model"] == "gbm"
        assert json.loads(split)["test"] and json.loads(evaluation)["model"]["roc_auc"] is not None and size > 1000
        stored = _stored(ws)
        assert len(stored) == first.accounts > 10
        assert all(r[5] == 1 and r[6].isoformat() == first.scored_at for r in stored)
        assert all(json.loads(r[4]) for r in stored[:5])  # reasons for every account, the riskiest included
        # what the refresh wrote is what the stored model scores now, and what a fresh fit on the same data gives
        accounts, _ = _direct(ws)
        _same_accounts(stored, accounts)
        fresh = risk_report(ws.engine, ws.definition, stored=False)
        assert fresh["scores"] == "computed" and fresh["model_version"] is None
        _same_accounts(stored, fresh["accounts"])
        read = risk_report(ws.engine, ws.definition)
        assert read["scores"] == "stored" and read["model_version"] == 1
        assert {k: read[k] for k in ("at", "paying_accounts", "mean_risk", "evaluation", "accounts")} == \
               {k: fresh[k] for k in ("at", "paying_accounts", "mean_risk", "evaluation", "accounts")}


def test_within_the_window_the_model_is_reused_and_every_account_rescored(ws_path):
    with Workspace(ws_path) as ws:
        before = _stored(ws)
        fits = churn_model.FITS
        ws.ingest([str(_later(ws_path, 3))])
        risk = ws.last_refresh.risk
        assert churn_model.FITS == fits  # no model fitted
        assert risk.model == "reused" and risk.model_version == 1, risk
        assert "3.0d of newer data since" in risk.reason and "2026-11-08 (risk.refit 7d)" in risk.reason
        assert risk.scored_at.startswith("2026-11-04") and risk.trained_through.startswith("2026-11-01")
        after = _stored(ws)
        assert after[0][6].isoformat() == risk.scored_at and {r[5] for r in after} == {1}
        assert [r[1] for r in after] != [r[1] for r in before]  # three more days without activity: new scores
        accounts, at = _direct(ws)
        assert at.isoformat() == risk.scored_at
        _same_accounts(after, accounts)
        assert ws.con.execute(f"SELECT count(*) FROM {MODELS}").fetchall() == [(1,)]
        # the features it scored: the lifetime aggregates folded for the accounts with new events only, the 90-day
        # windows moved three days for all; equal to every account's features computed from all its events
        engine, d = ws.engine, ws.definition
        with engine.scope():
            extra = extra_features(engine, d)
            folded, folded_at = feature_state.stored_features(engine, d, extra)
            full = features_module.FeatureBuilder(engine, d, extra, materialize=False).at(at)
        assert folded_at == at and len(folded) > len(accounts)  # every account, paying or not
        pd.testing.assert_frame_equal(folded, full, check_exact=False, rtol=1e-12)


def test_after_the_window_the_model_is_refitted(ws_path):
    with Workspace(ws_path) as ws:
        fits = churn_model.FITS
        ws.ingest([str(_later(ws_path, 8))])
        risk = ws.last_refresh.risk
        assert churn_model.FITS == fits + 1
        assert risk.model == "refitted" and risk.model_version == 2
        assert "8.0d past the events the model was fitted on" in risk.reason and "risk.refit is 7d" in risk.reason
        assert risk.trained_through == risk.scored_at and risk.scored_at.startswith("2026-11-09")
        assert [r[0] for r in ws.con.execute(f"SELECT version FROM {MODELS} ORDER BY version").fetchall()] == [1, 2]
        _same_accounts(_stored(ws), _direct(ws)[0])
    out = invoke_json("risk", "--workspace", str(ws_path))
    assert out["model_version"] == 2 and out["trained_through"].startswith("2026-11-09") and out["scores"] == "stored"


def test_a_changed_definition_refits_and_the_schedule_alone_does_not(ws_path):
    yml = ws_path / "journeymap.yml"
    spec = yaml.safe_load(yml.read_text())
    spec["risk"] = {"refit": "30d"}  # the schedule is not part of what the features read: no refit for it
    # nor are the playbooks, their owners and the future state: editing them leaves the scores current
    spec["playbooks"][0]["name"] += " (renamed)"
    spec["owners"] = {**(spec.get("owners") or {}), "default": "cs-team@example.com"}
    spec["future_state"] = None
    yml.write_text(yaml.safe_dump(spec, sort_keys=False))
    with Workspace(ws_path) as ws:
        assert risk_report(ws.engine, ws.definition, top=3)["scores"] == "stored"
        assert health_report(ws.engine, ws.definition)["scores"] == "stored"
        assert ws.refresh().risk.model == "reused"
    spec["health"] = {**(spec.get("health") or {}), "signals": {**(spec.get("health") or {}).get("signals", {}),
                                                                 "high_effort": 4}}
    yml.write_text(yaml.safe_dump(spec, sort_keys=False))
    # until the next refresh the stored scores are stale: `journeymap risk` fits a model now and says why
    out = invoke_json("risk", "--workspace", str(ws_path), "--top", "3")
    assert out["scores"] == "computed" and out["model_version"] is None
    assert any("journeymap.yml changed since the stored scores were written" in n for n in out["notes"])
    with Workspace(ws_path) as ws:
        risk = ws.refresh().risk
        assert risk.model == "refitted" and risk.reason == "journeymap.yml changed since the model was fitted"
        assert risk.model_version == 2
        assert risk_report(ws.engine, ws.definition, top=3)["model_version"] == 2


def test_refit_0d_refits_at_every_refresh(ws_path):
    yml = ws_path / "journeymap.yml"
    yml.write_text(yml.read_text() + "\nrisk:\n  refit: 0d\n")
    with Workspace(ws_path) as ws:
        risk = ws.refresh().risk
    assert risk.model == "refitted" and "risk.refit is 0d" in risk.reason and risk.model_version == 2


def test_scores_older_than_the_journey_are_not_read(ws_path):
    from journeymap.state import refresh

    with Workspace(ws_path) as ws:
        ws.ingest([str(_later(ws_path, 2))], refresh=False)
        assert risk_report(ws.engine, ws.definition, top=3)["scores"] == "stored"  # the journey has not moved yet
        refresh(ws.con, ws.definition)  # identity and the journey state, without the churn model (as if it failed)
        r = risk_report(ws.engine, ws.definition, top=3)
    assert r["scores"] == "computed" and "events arrived since the stored scores were written" in r["notes"][0]
    assert r["at"].startswith("2026-11-03")


def test_the_map_reads_the_stored_scores_and_fits_no_model(ws_path):
    fits = churn_model.FITS
    risk = invoke_json("risk", "--workspace", str(ws_path))
    m = invoke_json("map", "--workspace", str(ws_path))
    assert churn_model.FITS == fits  # neither fitted a model
    panel = m["views"]["all"]["at_risk"]
    assert risk["scores"] == panel["scores"] == "stored" and risk["model_version"] == panel["model_version"] == 1
    assert risk["fitted_at"] == panel["fitted_at"] and panel["as_of"] == risk["at"]
    assert panel["paying_accounts"] == risk["paying_accounts"]
    assert panel["mean_risk"] == pytest.approx(risk["mean_risk"], rel=1e-12)  # the map sums them riskiest first
    listed = [{"unit_id": a["unit_id"], "risk": a["risk"], "mrr": a["mrr"], "stage": a["stage"],
               "reasons": [{"feature": c["feature"], "text": c["text"]} for c in a["reasons"]]}
              for a in risk["accounts"][: len(panel["top"])]]
    assert panel["top"] == listed and len(listed) == 5
    assert panel["roc_auc"] == risk["evaluation"]["model"]["roc_auc"]


def test_other_options_fit_a_model_now_and_say_so(ws_path):
    fits = churn_model.FITS
    out = invoke_json("risk", "--workspace", str(ws_path), "--model", "logistic", "--top", "3")
    assert churn_model.FITS == fits + 1
    assert out["scores"] == "computed" and out["model_version"] is None and out["model"] == "logistic"
    assert "the stored scores are for the default options, not model logistic (stored: gbm)" in out["notes"][0]
    past = invoke_json("risk", "--workspace", str(ws_path), "--at", "2026-09-01", "--top", "3")
    assert past["scores"] == "computed" and "not 2026-09-01" in past["notes"][0]
    same_day = invoke_json("risk", "--workspace", str(ws_path), "--at", "2026-11-01", "--top", "3")
    assert same_day["scores"] == "stored"
    text = invoke_cli("risk", "--workspace", str(ws_path), "--top", "3").stdout
    assert "scores written at the last refresh by model version 1" in " ".join(text.split())


def test_ingest_reports_what_the_refresh_did_with_the_model(ws_path):
    out = invoke_json("ingest", str(_later(ws_path, 1)), "--workspace", str(ws_path))
    assert out["risk"]["model"] == "reused" and out["risk"]["model_version"] == 1
    assert "fitted on the events before 2026-11-01" in out["risk"]["reason"]
    text = invoke_cli("ingest", str(_later(ws_path, 9)), "--workspace", str(ws_path)).stdout
    said = " ".join(text.split())
    assert "churn model refitted (the data reaches" in said and "version 2" in said


def test_without_revenue_the_refresh_says_there_is_no_model(ws_path):
    yml = ws_path / "journeymap.yml"
    spec = yaml.safe_load(yml.read_text())
    spec.pop("revenue")
    # the demo's experiments guard MRR, which needs revenue: the definition says so rather than dropping them
    yml.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(DefinitionError, match="kind mrr needs the definition's `revenue:` section"):
        load_definition(yml)
    for experiment in spec.get("experiments", []):
        experiment["guardrails"] = [g for g in experiment.get("guardrails", []) if g.get("kind") != "mrr"]
    yml.write_text(yaml.safe_dump(spec, sort_keys=False))
    with Workspace(ws_path) as ws:
        risk = ws.refresh().risk
    assert risk.model == "skipped" and "no `revenue:` section" in risk.reason


def test_the_refit_setting_is_validated_and_in_the_schema(ws_path):
    yml = ws_path / "journeymap.yml"
    yml.write_text(yml.read_text() + "\nrisk:\n  refit: weekly\n")
    bad = invoke_cli("validate", "--workspace", str(ws_path), check=False)
    assert bad.returncode != 0
    said = " ".join((bad.stdout + bad.stderr).split())
    assert "risk.refit: 'weekly' is not a duration" in said and "did you mean '7d'?" in said
    yml.write_text(yml.read_text().replace("refit: weekly", "refitt: 7d"))
    said = " ".join(invoke_cli("validate", "--workspace", str(ws_path), check=False).stderr.split())
    assert "'refitt' is not a risk setting (known: refit); did you mean 'refit'?" in said
    schema = json.loads(invoke_cli("schema").stdout)
    assert schema["$defs"]["RiskConfig"]["properties"]["refit"]["default"] == "7d"


def test_the_risk_commands_defaults_are_the_refresh_models_options():
    from journeymap.analyses.accounts import RiskParams
    from journeymap.analyses.base import days

    p = RiskParams()
    assert {"horizon_days": round(days(p.horizon)), "model": p.model, "seed": 0} == DEFAULTS


# -- health -------------------------------------------------------------------------------------------------

FROM_WHERE = ("scores", "model_version", "notes")
"""health_report's keys that say where the numbers come from; every other key is a number or a name."""


@pytest.fixture
def snapshot_calls(monkeypatch):
    """How many times features.snapshots (the monthly feature history, what health's weights and backtest
    read) is computed."""
    calls = []
    real = features_module.snapshots

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(features_module, "snapshots", counted)
    return calls


def test_the_refresh_writes_the_health_scores_that_computing_them_gives(ws_path, base, snapshot_calls):
    with Workspace(ws_path) as ws:
        stored = health_report(ws.engine, ws.definition)
        assert snapshot_calls == []  # read, not computed
        computed = health_report(ws.engine, ws.definition, stored=False)
        assert len(snapshot_calls) == 1
        rows = ws.con.execute(f"SELECT unit_id, health, band, model_version, scored_at FROM {HEALTH} ORDER BY rank").fetchall()
        ((fit,),) = ws.con.execute(f"SELECT health FROM {MODELS} WHERE version = 1").fetchall()
    assert stored["scores"] == "stored" and stored["model_version"] == 1 and "churn model version 1" in stored["notes"][0]
    assert computed["scores"] == "computed" and computed["model_version"] is None and computed["notes"] == []
    # every number and name exactly as computed now, right after the refit: the same weights, backtest and ranks
    assert {k: v for k, v in stored.items() if k not in FROM_WHERE} == \
           {k: v for k, v in computed.items() if k not in FROM_WHERE}
    assert len(rows) == base[1].accounts == len(stored["accounts"]) > 10
    assert [r[0] for r in rows] == [a["unit_id"] for a in stored["accounts"]]
    assert {(r[3], r[4].isoformat()) for r in rows} == {(1, base[1].scored_at)}
    assert len({r[2] for r in rows}) >= 2 and stored["backtest"]["rows"] > 0
    assert json.loads(fit)["source"] == "config" == stored["weights"]["source"]
    out = invoke_json("health", "--workspace", str(ws_path))
    assert out["scores"] == "stored" and out["accounts"] == stored["accounts"] and snapshot_calls == [1]
    text = " ".join(invoke_cli("health", "--workspace", str(ws_path), "--rows", "3").stdout.split())
    assert "scores written at the last refresh; weights and backtest fitted with churn model version 1" in text


def test_between_refits_health_is_rescored_under_the_stored_weights(ws_path, snapshot_calls):
    with Workspace(ws_path) as ws:
        ws.ingest([str(_later(ws_path, 3))])
        assert ws.last_refresh.risk.model == "reused" and snapshot_calls == []
        stored = health_report(ws.engine, ws.definition)
        computed = health_report(ws.engine, ws.definition, stored=False)
    assert stored["scores"] == "stored" and stored["at"] == computed["at"] and stored["at"].startswith("2026-11-04")
    # configured weights: the scores at the new date are the ones computed now; only the backtest (and each
    # band's churn rate, which it gives) is the refit's, on the snapshots of the data it was fitted on
    assert stored["weights"] == computed["weights"]
    keep = ("unit_id", "health", "band", "mrr", "components", "expansion")
    assert [{k: a[k] for k in keep} for a in stored["accounts"]] == [{k: a[k] for k in keep} for a in computed["accounts"]]
    assert [b["accounts"] for b in stored["bands"]] == [b["accounts"] for b in computed["bands"]]
    assert stored["expansion"] == computed["expansion"]


def test_other_health_options_and_stale_scores_compute_now_and_say_so(ws_path):
    learned = invoke_json("health", "--workspace", str(ws_path), "--weights", "learned")
    assert learned["scores"] == "computed" and learned["weights"]["source"] == "learned"
    assert "the stored health scores are for config weights, not weights learned" in learned["notes"][0]
    # the demo configures its components: asking for them is asking for what auto chose
    configured = invoke_json("health", "--workspace", str(ws_path), "--weights", "config")
    assert configured["scores"] == "stored" and configured["weights"]["source"] == "config"
    past = invoke_json("health", "--workspace", str(ws_path), "--at", "2026-09-01")
    assert past["scores"] == "computed" and "not 2026-09-01" in past["notes"][0]
    assert invoke_json("health", "--workspace", str(ws_path), "--at", "2026-11-01")["scores"] == "stored"
    with Workspace(ws_path) as ws:
        ws.ingest([str(_later(ws_path, 2))], refresh=False)
        from journeymap.state import refresh

        refresh(ws.con, ws.definition)  # the journey moved; the scores were not rewritten
        h = health_report(ws.engine, ws.definition)
    assert h["scores"] == "computed" and "events arrived since the stored scores were written" in h["notes"][0]


def test_a_model_stored_by_an_earlier_journeymap_is_refitted_for_its_health_weights(ws_path):
    with Workspace(ws_path) as ws:
        ws.con.execute(f"ALTER TABLE {MODELS} DROP COLUMN health")  # the table as the previous layout wrote it
        ws.con.execute(f"DROP TABLE {HEALTH}")
        ws.con.execute("DELETE FROM meta WHERE key = 'health.summary'")
        assert health_report(ws.engine, ws.definition)["notes"][0].startswith("computed now: no stored health scores")
        risk = ws.refresh().risk
        assert risk.model == "refitted" and "no health weights (an earlier journeymap fitted it)" in risk.reason
        assert risk.model_version == 2
        assert health_report(ws.engine, ws.definition)["model_version"] == 2
        assert ws.con.execute(f"SELECT count(*) FROM {MODELS} WHERE health IS NULL").fetchall() == [(1,)]  # version 1


def test_the_text_features_read_the_stored_texts_and_equal_those_read_from_the_events(ws_path):
    from journeymap.insights.voice import text_state

    with Workspace(ws_path) as ws:
        engine, d = ws.engine, ws.definition
        assert text_state.stored_texts(engine, d) is not None  # the refresh folded them
        with engine.scope():
            stored, at, _ = scoring_frame(engine, d, extra_features(engine, d))
        ws.con.execute("DELETE FROM meta WHERE key = ?", ["texts.account.journey"])  # not current: read the events
        assert text_state.stored_texts(engine, d) is None
        with engine.scope():
            read, _, _ = scoring_frame(engine, d, extra_features(engine, d))
    assert stored["sentiment"].notna().sum() > 10 and stored["negative_texts_90d"].sum() > 0
    pd.testing.assert_frame_equal(stored, read)


def test_health_weights_that_cannot_be_learned_leave_the_churn_scores_and_say_why(ws_path, monkeypatch):
    from journeymap.errors import NotEnoughData
    from journeymap.insights.risk import health as health_module

    yml = ws_path / "journeymap.yml"
    spec = yaml.safe_load(yml.read_text())
    spec["health"].pop("components")  # auto: learned weights
    yml.write_text(yaml.safe_dump(spec, sort_keys=False))

    def no_churn(*_args, **_kwargs):
        raise NotEnoughData("the training dates have no churn (or only churn): health weights cannot be learned",
                            add="`health.components` weights to journeymap.yml")

    monkeypatch.setattr(health_module, "learned_components", no_churn)
    with Workspace(ws_path) as ws:
        risk = ws.refresh().risk
        assert risk.model == "refitted" and risk.model_version == 2  # the churn scores are written all the same
        assert risk_report(ws.engine, ws.definition, top=3)["scores"] == "stored"
        ((fit,),) = ws.con.execute(f"SELECT health FROM {MODELS} WHERE version = 2").fetchall()
        assert "no churn" in json.loads(fit)["error"]
        with pytest.raises(NotEnoughData, match="health weights cannot be learned"):
            health_report(ws.engine, ws.definition)  # computed now: the same error, to the user
    monkeypatch.undo()
    with Workspace(ws_path) as ws:
        computed = health_report(ws.engine, ws.definition)
    assert computed["scores"] == "computed" and computed["weights"]["source"] == "learned"
    assert "computed now: the health weights could not be fitted with model version 2" in computed["notes"][0]


def test_journeymap_state_says_whether_the_scores_and_texts_a_refresh_writes_are_current(ws_path, base):
    from journeymap.state import refresh

    def accounts(path) -> int:
        """Every account of the account-level journey state (each has features; only paying ones are scored)."""
        with Workspace(path) as ws:
            return ws.con.execute("SELECT count(*) FROM state_units_account").fetchone()[0]

    def written() -> dict[str, tuple]:
        out = invoke_json("state", "--workspace", str(ws_path))["refreshed"]
        return {r["name"]: (r["table"], r["current"], r["stale_because"], r["rows"], r["model_version"]) for r in out}

    now = written()
    assert now == {"churn risk": ("state_risk", True, None, base[1].accounts, 1),
                   "health": ("state_health", True, None, base[1].accounts, 1),
                   "churn features (account)": ("state_features_account", True, None, accounts(ws_path), None),
                   "customer texts (account)": ("state_texts_account", True, None, now["customer texts (account)"][3],
                                                None)}
    assert now["customer texts (account)"][3] > 100
    with Workspace(ws_path) as ws:
        ws.ingest([str(_later(ws_path, 2))], refresh=False)
        refresh(ws.con, ws.definition)  # identity and the journey state, without the scores (as if they failed)
    stale = written()
    assert {k: v[1:3] for k, v in stale.items()} == {
        "churn risk": (False, "events arrived since the stored scores were written"),
        "health": (False, "events arrived since the stored scores were written"),
        "churn features (account)": (False, "the journey state moved on since"),
        "customer texts (account)": (False, "the journey state moved on since")}
    text = " ".join(invoke_cli("state", "--workspace", str(ws_path)).stdout.split())
    assert "churn risk │ state_risk │ no: events arrived since the stored scores were written" in text
