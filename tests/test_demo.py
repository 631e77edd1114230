"""The demo simulator: its API, its files, determinism, the published benchmarks it must land inside,
and the causal effects planted in it. Rates are computed from the written files and the truth table
with DuckDB, the way an analyst would."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import duckdb
import pytest

from journeymap.demo import DemoOutput, simulate
from journeymap.demo import business as b
from journeymap.demo.billing import STRIPE_TYPES
from journeymap.events.schema import EVENT_TYPES, SOURCES
from journeymap.journey.load import load_definition

END = "TIMESTAMP '2026-10-31 23:59:59'"
MAPPINGS = {"crm", "crm_accounts", "stripe", "zendesk", "surveys", "reviews"}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> DemoOutput:
    return simulate(tmp_path_factory.mktemp("small"), accounts=300, seed=7)


@pytest.fixture(scope="module")
def mid(tmp_path_factory) -> DemoOutput:
    return simulate(tmp_path_factory.mktemp("mid"), accounts=2000, seed=42)


def _con(out: DemoOutput) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    d = out.workspace
    con.execute(f"CREATE VIEW t AS SELECT * FROM '{out.truth}'")
    con.execute(f"CREATE VIEW tk AS SELECT * FROM '{d / 'truth' / 'tickets.parquet'}'")
    con.execute(f"CREATE VIEW p AS SELECT * FROM '{d / 'data' / 'product_events.parquet'}'")
    for name in ("web_events", "crm_lifecycle", "crm_accounts", "stripe_events", "zendesk_tickets",
                 "survey_responses", "g2_reviews"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_csv('{d / 'data' / (name + '.csv')}')")
    # who is who: the analyst's email -> account lookup, from identify calls and the CRM
    con.execute("""CREATE VIEW email_account AS SELECT DISTINCT email, account_id FROM p WHERE type = 'identify'
                   UNION SELECT "Email", 'acct_' || "Company ID" FROM crm_lifecycle""")
    con.execute(f"""CREATE VIEW cm AS SELECT *, epoch(least(coalesce(churn_time, {END}), {END}) - customer_since)
                    / 86400 / 30.44 AS months FROM t WHERE became_customer""")
    return con


def _one(con, sql: str):
    return con.sql(sql).fetchall()[0][0]


# --- API and files -------------------------------------------------------------------------------

def test_public_api():
    import inspect

    import journeymap.demo as demo

    assert demo.__all__ == ["DemoOutput", "simulate"]
    params = inspect.signature(simulate).parameters
    assert list(params) == ["out_dir", "accounts", "seed", "progress"]
    assert (params["accounts"].default, params["seed"].default, params["progress"].default) == (5000, 42, None)
    assert [f.name for f in dataclasses.fields(DemoOutput)] == ["workspace", "definition", "files", "truth"]


def test_output_layout(small: DemoOutput):
    assert small.definition == small.workspace / "journeymap.yml"
    assert small.truth.parent == small.workspace / "truth" and small.truth.suffix == ".parquet"
    names = [name for _, name in small.files]
    assert set(n for n in names if n) == MAPPINGS
    assert names.count(None) == 2  # product (Parquet) and web (CSV) are canonical
    for path, _ in small.files:
        assert path.parent == small.workspace / "data" and path.stat().st_size > 0


def test_progress_and_argument_checks(tmp_path):
    seen: list[tuple[str, float]] = []
    simulate(tmp_path, accounts=20, seed=1, progress=lambda msg, frac: seen.append((msg, frac)))
    fracs = [f for _, f in seen]
    assert fracs[0] == 0.0 and fracs[-1] == 1.0 and fracs == sorted(fracs)
    with pytest.raises(ValueError):
        simulate(tmp_path / "x", accounts=0)


def _digests(out: DemoOutput) -> dict[str, str]:
    paths = [p for p, _ in out.files] + [out.truth, out.definition]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def test_same_seed_same_bytes_other_seed_other_data(small: DemoOutput, tmp_path):
    again = simulate(tmp_path / "again", accounts=300, seed=7)
    assert _digests(again) == _digests(small)
    other = _digests(simulate(tmp_path / "other", accounts=300, seed=8))
    differing = {k for k, v in other.items() if v != _digests(small)[k]}
    assert differing >= {p.name for p, _ in small.files} | {small.truth.name}


def test_every_file_parses_and_stays_in_the_window(small: DemoOutput):
    con = _con(small)
    for view in ("p", "web_events"):
        bad_source = _one(con, f"SELECT count(*) FROM {view} WHERE source NOT IN {SOURCES}")
        bad_type = _one(con, f"SELECT count(*) FROM {view} WHERE type NOT IN {EVENT_TYPES}")
        assert bad_source == 0 and bad_type == 0
        lo, hi = con.sql(f"SELECT min(ts::TIMESTAMP), max(ts::TIMESTAMP) FROM {view}").fetchall()[0]
        assert str(lo) >= "2025-05-01" and str(hi) <= "2026-10-31 23:59:59"
        invalid = _one(con, f"""SELECT count(*) FROM {view} WHERE (properties IS NOT NULL AND NOT json_valid(properties))
                                OR (traits IS NOT NULL AND NOT json_valid(traits))""")
        assert invalid == 0
        # identify rows carry the link; group rows carry account traits
        assert _one(con, f"SELECT count(*) FROM {view} WHERE type = 'identify' AND email IS NULL") == 0
    assert _one(con, "SELECT count(*) FROM p WHERE type = 'group' AND (account_id IS NULL OR traits IS NULL)") == 0
    assert _one(con, "SELECT count(*) FROM p WHERE user_id IS NULL") == 0
    stripe_types = {r[0] for r in con.sql("SELECT DISTINCT type FROM stripe_events").fetchall()}
    assert stripe_types <= set(STRIPE_TYPES) and len(stripe_types) >= 9
    assert _one(con, f"SELECT max(to_timestamp(created)::TIMESTAMP) <= {END} FROM stripe_events")
    assert _one(con, 'SELECT count(*) FROM zendesk_tickets WHERE "Solved at" < "Created at"') == 0
    assert con.sql('SELECT DISTINCT "Satisfaction" FROM zendesk_tickets ORDER BY 1').fetchall() == [
        ("bad",), ("good",), (None,)]
    scores = dict(con.sql("SELECT survey, [min(score), max(score)] FROM survey_responses GROUP BY 1").fetchall())
    assert 0 <= scores["nps"][0] and scores["nps"][1] <= 10 and scores["csat"][1] <= 5 and scores["ces"][1] <= 7
    assert _one(con, "SELECT count(DISTINCT comment) FROM survey_responses") > 0.5 * _one(
        con, "SELECT count(comment) FROM survey_responses")  # wording varies
    assert _one(con, 'SELECT count(*) FROM crm_lifecycle WHERE "Changed At" IS NULL') == 0


def test_definition_loads_and_its_sources_fit_the_files(small: DemoOutput):
    d = load_definition(small.definition)
    assert set(d.sources) == MAPPINGS
    assert len(d.personas) >= 3 and len(d.milestones.key_features) >= 4
    assert {s.kind for s in d.surveys} == {"nps", "csat", "ces"}
    assert all(t.reference and "SAAS_BENCHMARKS" in t.reference for t in d.targets)
    assert any(t.metric == "ces" and t.change == "-15%" and t.baseline == "yoy" for t in d.targets)
    con = duckdb.connect()
    for path, name in small.files:
        if name is None:
            continue
        header = set(con.sql(f"SELECT * FROM read_csv('{path}') LIMIT 0").columns)
        mapping = d.sources[name]
        missing = (mapping.used_columns() | set(mapping.properties) | set(mapping.traits)) - header
        assert not missing, f"{name}: {missing}"


def _event_names(out: DemoOutput) -> set[str]:
    d = load_definition(out.definition)
    con = _con(out)
    names = {r[0] for r in con.sql("SELECT DISTINCT event FROM p UNION SELECT DISTINCT event FROM web_events").fetchall()}
    for name, view, column in (("crm", "crm_lifecycle", "Lifecycle Stage"), ("stripe", "stripe_events", "type"),
                               ("surveys", "survey_responses", "survey")):
        mapping = d.sources[name].fields["event"].map
        names |= {mapping.get(r[0], r[0]) for r in con.sql(f'SELECT DISTINCT "{column}" FROM {view}').fetchall()}
    return names | {"ticket_created", "ticket_solved", "review_posted", "company_synced"}


def _rule_events(rule) -> set[str]:
    out = set(rule.event or [])
    for sub in rule.any or []:
        out |= _rule_events(sub)
    return out


def test_every_stage_touchpoint_and_feature_matches_real_events(mid: DemoOutput):
    d = load_definition(mid.definition)
    produced = _event_names(mid)
    for stage in d.stages:
        named = _rule_events(stage.entry)
        assert named and named <= produced, (stage.id, named - produced)
    for tp in d.touchpoints:
        assert _rule_events(tp.match) <= produced, tp.id
    for f in d.milestones.key_features:
        assert _rule_events(f.match) <= produced, f.id
    assert _rule_events(d.milestones.value_moment) <= produced
    for key, step in d.future_state.all_steps():  # the designed journey's event steps
        if step.rule is not None:
            assert _rule_events(step.rule) <= produced, key
    assert len(d.playbooks) == 3
    for p in d.playbooks:  # every playbook's rules name events the demo produces (docs/playbooks.md)
        for key, rule in p.rules():
            assert _rule_events(rule) <= produced, (p.id, key)


def test_identity_stitching_has_work_to_do(small: DemoOutput):
    con = _con(small)
    # visitors who never sign up far outnumber accounts; placeholders on a small share of web events
    visitors = _one(con, "SELECT count(DISTINCT anonymous_id) FROM web_events WHERE anonymous_id LIKE 'a-%'")
    assert visitors > 10 * 300
    placeholder = _one(con, "SELECT avg((anonymous_id IN ('guest', 'undefined') OR anonymous_id IS NULL AND email IS NULL)::INT) FROM web_events")
    assert 0.005 < placeholder < 0.05
    assert _one(con, "SELECT count(*) FROM p WHERE anonymous_id IN ('guest', 'undefined', 'null')") > 0
    # signups keep the browser they evaluated with, and identify links it to the user and email
    linked = _one(con, """SELECT count(DISTINCT i.user_id) FROM p i JOIN web_events w USING (anonymous_id)
                          WHERE i.type = 'identify' AND i.user_id IS NOT NULL AND w.ts::TIMESTAMP < i.ts""")
    assert linked > 0.5 * _one(con, "SELECT count(*) FROM p WHERE event = 'signed_up'")
    # CRM, billing, support and surveys name people by email only
    unknown = _one(con, 'SELECT count(*) FROM zendesk_tickets WHERE "Requester email" NOT IN (SELECT email FROM email_account)')
    assert unknown < 0.02 * _one(con, "SELECT count(*) FROM zendesk_tickets")


# --- the business lands inside the published ranges ----------------------------------------------

def business_rates(con) -> dict[str, float]:
    r = {}
    r["trial_to_paid"] = _one(con, """SELECT avg(became_customer::DOUBLE) FROM t
                                      WHERE started_trial AND (trial_expired OR became_customer)""")
    r["visitor_to_trial"] = _one(con, """SELECT (SELECT sum(started_trial::INT) FROM t) / count(DISTINCT anonymous_id)
                                         FROM web_events WHERE anonymous_id LIKE 'a-%'""")
    r["activation"] = _one(con, f"SELECT avg(activated::DOUBLE) FROM t WHERE acquired AND signup_at < {END} - INTERVAL 30 DAY")
    r["monthly_logo_churn"] = _one(con, "SELECT sum(churned::INT) / sum(months) FROM cm")
    r["involuntary_share"] = _one(con, """SELECT avg((cancellation_reason = 'payment_failed')::INT) FROM stripe_events
                                          WHERE type = 'customer.subscription.deleted'""")
    r["nps"] = _one(con, """SELECT 100 * (avg((score >= 9)::INT) - avg((score <= 6)::INT)) FROM survey_responses
                            WHERE survey = 'nps'""")
    r["csat"] = _one(con, "SELECT avg((score >= 4)::INT) FROM survey_responses WHERE survey = 'csat'")
    r["core_feature_adoption"] = _one(con, f"""
        WITH users AS (SELECT DISTINCT user_id FROM p JOIN t USING (account_id) WHERE t.became_customer AND p.type = 'track'),
             used AS (SELECT DISTINCT user_id, event FROM p WHERE event IN {b.KEY_FEATURES})
        SELECT count(*) / ({len(b.KEY_FEATURES)} * (SELECT count(*) FROM users)) FROM used SEMI JOIN users USING (user_id)""")
    r["dau_mau"] = _one(con, """
        WITH d AS (SELECT DISTINCT user_id, ts::DATE AS day FROM p WHERE type = 'track'),
             dau AS (SELECT date_trunc('month', day) AS m, day, count(*) AS n FROM d GROUP BY ALL),
             mau AS (SELECT date_trunc('month', day) AS m, count(DISTINCT user_id) AS n FROM d GROUP BY ALL)
        SELECT avg(dau.n / mau.n) FROM dau JOIN mau USING (m) WHERE m >= DATE '2025-08-01'""")
    r["tickets_per_customer_month"] = _one(con, f"""
        SELECT count(*) / (SELECT sum(months) FROM cm) FROM zendesk_tickets z
        JOIN email_account e ON e.email = z."Requester email" JOIN cm USING (account_id)
        WHERE z."Created at"::TIMESTAMP >= cm.customer_since AND z."Created at"::TIMESTAMP < coalesce(cm.churn_time, {END})""")
    r["expansion_share_of_new_mrr"] = _one(con, """
        SELECT sum(greatest(mrr_cents - previous_mrr_cents, 0)) / (sum(greatest(mrr_cents - previous_mrr_cents, 0))
               + (SELECT sum(mrr_cents) FROM stripe_events WHERE type IN ('customer.subscription.created',
                                                                         'customer.subscription.trial_converted')))
        FROM stripe_events WHERE type IN ('customer.subscription.seats_added', 'customer.subscription.upgraded')""")
    r["top_features_click_share"] = _one(con, f"""
        WITH f AS (SELECT event, count(*) AS n FROM p WHERE event IN {b.FEATURES} GROUP BY 1)
        SELECT sum(n) FILTER (WHERE rank <= 2) / sum(n) FROM (SELECT n, rank() OVER (ORDER BY n DESC) AS rank FROM f)""")
    return r


def _assert_in_benchmarks(rates: dict[str, float]) -> None:
    assert set(rates) == set(b.BENCHMARKS)
    outside = {k: (round(v, 4), b.BENCHMARKS[k][:2]) for k, v in rates.items()
               if not b.BENCHMARKS[k][0] <= v <= b.BENCHMARKS[k][1]}
    assert not outside, outside


def test_business_lands_inside_published_ranges(mid: DemoOutput):
    _assert_in_benchmarks(business_rates(_con(mid)))


def test_features_are_skewed_like_pendo(mid: DemoOutput):
    con = _con(mid)
    shares = [r[0] for r in con.sql(f"""SELECT count(*) / sum(count(*)) OVER () FROM p WHERE event IN {b.FEATURES}
                                        GROUP BY event ORDER BY 1 DESC""").fetchall()]
    assert len(shares) == len(b.FEATURES) >= 6
    assert sum(shares[len(shares) // 2:]) < 0.05  # the bottom half of features is rarely used


def test_personas_differ(mid: DemoOutput):
    con = _con(mid)
    rows = {r[0]: r[1:] for r in con.sql("""SELECT persona, avg(mrr_start), sum(churned::INT) / sum(months), avg(users)
                                            FROM cm GROUP BY 1""").fetchall()}
    assert rows["smb"][0] < rows["mid_market"][0] < rows["enterprise"][0]  # ARPA
    assert rows["smb"][1] > rows["mid_market"][1] > rows["enterprise"][1]  # churn falls with ARPA
    assert rows["smb"][2] < rows["enterprise"][2]


# --- planted effects ---------------------------------------------------------------------------------

def churn_rate_ratio_integration(con) -> float:
    """Monthly churn hazard of week-one integrators over everyone else's."""
    rows = dict(con.sql("SELECT integration_week1, sum(churned::INT) / sum(months) FROM cm GROUP BY 1").fetchall())
    return rows[True] / rows[False]


def acquisition_ratio_calculator(con) -> float:
    """Evaluation -> acquisition of evaluators who saw the seat calculator, over the others'."""
    rows = dict(con.sql("""SELECT saw_confusing_pricing, avg(acquired::DOUBLE) FROM t
                           WHERE lead_at < TIMESTAMP '2026-09-01' GROUP BY 1""").fetchall())
    return rows[True] / rows[False]


def high_effort_hazard_ratio(con, tickets: str) -> float:
    """Daily churn hazard on the 60 days after a high-effort ticket was solved, over all other customer days.
    `tickets` yields (account_id, solved_at) of the high-effort tickets."""
    rows = dict(con.sql(f"""
        WITH days AS (SELECT account_id, churn_time, unnest(generate_series(customer_since::DATE,
                          least(coalesce(churn_time, {END}), {END})::DATE, INTERVAL 1 DAY)) AS day FROM cm),
             hi AS ({tickets}),
             flagged AS (SELECT d.*, EXISTS (SELECT 1 FROM hi WHERE hi.account_id = d.account_id
                          AND hi.solved_at < d.day AND hi.solved_at >= d.day - INTERVAL 60 DAY) AS elevated FROM days d)
        SELECT elevated, avg((churn_time IS NOT NULL AND churn_time::DATE = day)::INT) FROM flagged GROUP BY 1""").fetchall())
    return rows[True] / rows[False]


REPORTED_HIGH_EFFORT = """SELECT e.account_id, z."Solved at"::TIMESTAMP AS solved_at FROM zendesk_tickets z
    JOIN email_account e ON e.email = z."Requester email" WHERE z."Effort score" >= 5"""
LATENT_HIGH_EFFORT = "SELECT account_id, solved_at FROM tk WHERE high_effort AND solved_at IS NOT NULL"


def test_planted_effects_are_present(mid: DemoOutput):
    con = _con(mid)
    assert 0.3 <= churn_rate_ratio_integration(con) <= 0.8  # planted x0.5
    assert acquisition_ratio_calculator(con) <= 0.55  # planted x0.4
    assert 1.6 <= high_effort_hazard_ratio(con, LATENT_HIGH_EFFORT) <= 4.0  # planted x2.8 on total hazard
    assert 1.5 <= high_effort_hazard_ratio(con, REPORTED_HIGH_EFFORT) <= 4.0  # what the export shows
    # the truth table agrees with the files
    churned = _one(con, "SELECT count(*) FROM stripe_events WHERE type = 'customer.subscription.deleted'")
    assert churned == _one(con, "SELECT sum(churned::INT) FROM t")
    involuntary = _one(con, "SELECT sum((churn_type = 'involuntary')::INT) FROM t")
    assert involuntary == _one(con, """SELECT count(*) FROM stripe_events WHERE type = 'customer.subscription.deleted'
                                       AND cancellation_reason = 'payment_failed'""")
    reasons = dict(con.sql("SELECT churn_reason, count(*) FROM t WHERE churned GROUP BY 1").fetchall())
    assert set(reasons) <= set(b.CANCEL_FEEDBACK) | {"payment_failed"} and len(reasons) >= 5


def test_without_the_effect_the_check_fails():
    """The effect checks can fail: on data where exposure is unrelated to churn they give ~1."""
    con = duckdb.connect()
    con.execute("""CREATE VIEW cm AS SELECT (i % 3 = 0) AS integration_week1, (i % 10 = 0) AS churned, 10.0 AS months
                   FROM range(3000) r(i)""")
    assert not 0.3 <= churn_rate_ratio_integration(con) <= 0.8


def _event_count(out: DemoOutput) -> int:
    con = _con(out)
    return (_one(con, "SELECT count(*) FROM p") + _one(con, "SELECT count(*) FROM web_events")
            + sum(_one(con, f"SELECT count(*) FROM {v}") for v in ("crm_lifecycle", "crm_accounts", "stripe_events",
                                                                   "survey_responses", "g2_reviews"))
            + _one(con, 'SELECT count(*) + count("Solved at") FROM zendesk_tickets'))


@pytest.mark.slow
def test_default_size(simulated_demo):
    """The default size (5,000 accounts, seed 42), simulated once per run (test_churn_model.py ingests the same
    files; test_public_api checks these are the defaults); `elapsed` is how long that `simulate` call took."""
    out, elapsed = simulated_demo(5000, 42)
    con = _con(out)
    assert _one(con, "SELECT count(*) FROM t") == 5000
    events = _event_count(out)
    assert events >= 1_000_000
    assert elapsed < 40, f"{elapsed:.1f} s"
    _assert_in_benchmarks(business_rates(con))
    assert 0.35 <= churn_rate_ratio_integration(con) <= 0.75
    assert acquisition_ratio_calculator(con) <= 0.5
    assert 2.0 <= high_effort_hazard_ratio(con, LATENT_HIGH_EFFORT) <= 3.6
    print(json.dumps({"seconds": round(elapsed, 1), "events": events}))
