"""Rule conditions on JSON properties: the cheap key search in front of the JSON parse never changes a match."""

from __future__ import annotations

import json

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from journeymap.engine.backends import duckdb_engine
from journeymap.engine.rules import rule_expr
from journeymap.journey.rules import Rule

DOCS = [
    '{"plan": "pro", "seats": 12}',
    '{"pl\\u0061n": "pro"}',                 # an escaped key: still the key plan
    '{"note": "my \\"plan\\" is pro"}',     # "plan" only inside a value
    '{"billing": {"plan": "pro"}}',
    '{"Plan": "pro"}',
    None,
    '{}',
]

RULES = [
    {"where": {"plan": {"eq": "pro"}}},
    {"where": {"plan": {"exists": True}}},
    {"where": {"plan": {"exists": False}}},
    {"where": {"plan": {"ne": "pro"}}},
    {"where": {"plan": {"not_in": ["pro"]}}},
    {"where": {"billing.plan": {"in": ["pro", "team"]}}},
    {"where": {"seats": {"gte": 10}}},
    {"where": {"note": {"contains": "plan"}}},
]


def _matches(docs: list[str | None], rule: dict) -> list[int]:
    con = duckdb.connect()
    con.execute("CREATE TABLE ev (i INTEGER, event VARCHAR, source VARCHAR, channel VARCHAR, properties VARCHAR)")
    con.executemany("INSERT INTO ev VALUES (?, 'e', 'product', NULL, ?)", list(enumerate(docs)))
    engine = duckdb_engine(con)
    t = engine.table("ev")
    return sorted(r["i"] for r in engine.execute(t.filter(rule_expr(engine, t, Rule(**rule))).select("i")).to_pylist())


def _reference(doc: str | None, rule: dict) -> bool:
    """The rule evaluated on the parsed JSON in Python."""
    (path, cond), = rule["where"].items()
    value = json.loads(doc) if doc else {}
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    (op, arg), = cond.items()
    text = None if value is None else (json.dumps(value) if isinstance(value, dict | list) else str(value))
    if op == "exists":
        return (text is not None) == arg
    if op == "eq":
        return text == arg
    if op == "ne":
        return text != arg
    if op == "in":
        return text in arg
    if op == "not_in":
        return text not in arg
    if op == "contains":
        return text is not None and arg in text
    if op == "gte":
        try:
            return float(text) >= arg
        except (TypeError, ValueError):
            return False
    raise AssertionError(op)


def test_known_documents():
    for rule in RULES:
        expected = [i for i, d in enumerate(DOCS) if _reference(d, rule)]
        assert _matches(DOCS, rule) == expected, rule
    assert _matches(DOCS, RULES[0]) == [0, 1]  # the escaped key matches; "plan" inside a value does not


keys = st.sampled_from(["plan", "seats", "note", "pl\u0061n", "x\"y"])
values = st.one_of(st.sampled_from(["pro", "team", "plan", '"plan"', "10", "\\"]), st.integers(0, 20))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.none(), st.dictionaries(keys, values, max_size=3)), min_size=1, max_size=6),
       st.sampled_from(RULES[:5] + RULES[6:]), st.booleans())
def test_random_documents_match_the_reference(objects, rule, ascii_escapes):
    docs = [None if o is None else json.dumps(o, ensure_ascii=ascii_escapes) for o in objects]
    expected = [i for i, d in enumerate(docs) if _reference(d, rule)]
    assert _matches(docs, rule) == expected
