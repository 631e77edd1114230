"""The compiled-SQL cache (engine.compile_cache) never changes an answer: each engine reads its own tables
and its own materialized names, a table whose columns changed gets new SQL, and every analysis of the registry
returns on the demo, from cached SQL, what it returns with no cache at all."""

from __future__ import annotations

import json
import re

import duckdb
import ibis
import pytest

from journeymap.analyses import REGISTRY
from journeymap.engine import compile_cache
from journeymap.engine.backends import duckdb_engine
from journeymap.workspace import Workspace


@pytest.fixture(autouse=True)
def empty_cache():
    compile_cache.clear()
    yield
    compile_cache.clear()


def _store(rows: list[tuple[int, str]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE orders (amount BIGINT, plan VARCHAR)")
    con.executemany("INSERT INTO orders VALUES (?, ?)", rows)
    return con


def _per_plan(engine) -> tuple[dict, str]:
    """Orders over 10 per plan, through a materialized table and a shared one: the names engine.backends gives
    per call end up in the SQL."""
    t = engine.table("orders")
    big = engine.materialize(t.filter(t.amount > 10))
    counts = engine.share(big.group_by("plan").agg(n=big.count(), total=big.amount.sum()))
    expr = counts.order_by("plan")
    return {r["plan"]: (r["n"], r["total"]) for r in engine.execute(expr).to_pylist()}, engine.backend.compile(expr)


def _brute_force(rows):
    out = {}
    for amount, plan in rows:
        if amount > 10:
            n, total = out.get(plan, (0, 0))
            out[plan] = (n + 1, total + amount)
    return out


def test_each_engine_reads_its_own_tables_from_cached_sql():
    first_rows = [(5, "pro"), (20, "pro"), (30, "team"), (11, "team"), (12, "pro")]
    second_rows = [(50, "free"), (9, "pro"), (70, "free")]
    first, second = duckdb_engine(_store(first_rows)), duckdb_engine(_store(second_rows))

    got_first, sql_first = _per_plan(first)
    misses, hits = compile_cache.stats["misses"], compile_cache.stats["hits"]
    assert misses == 2  # the materialized table, then the counts (compiled again for the SQL: a hit)
    got_second, sql_second = _per_plan(second)

    assert got_first == _brute_force(first_rows) == {"pro": (2, 32), "team": (2, 41)}
    assert got_second == _brute_force(second_rows) == {"free": (2, 120)}
    assert compile_cache.stats["misses"] == misses, "the second engine compiled again"
    assert compile_cache.stats["hits"] == hits + 3
    # the same statement, each naming its own engine's materialized and shared tables
    assert f"_jm_cache_{id(first)}_1" in sql_first and f"_jm_cache_{id(second)}_1" in sql_second
    assert str(id(first)) not in sql_second and str(id(second)) not in sql_first
    assert _unnamed(sql_second) == _unnamed(sql_first)


def _unnamed(sql: str) -> str:
    """`sql` with the engine's per-call names numbered by first appearance."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        if match.group(0) not in names:
            names.append(match.group(0))
        return f"<{match.group(1)} {names.index(match.group(0))}>"

    return re.sub(r"_jm_(cache|share)_\d+_\d+", number, sql)


def test_a_table_whose_columns_changed_gets_new_sql():
    engine = duckdb_engine(_store([(20, "pro")]))
    assert _per_plan(engine)[0] == {"pro": (1, 20)}
    retyped = duckdb.connect()
    retyped.execute("CREATE TABLE orders (amount DOUBLE, plan VARCHAR)")
    retyped.execute("INSERT INTO orders VALUES (20.5, 'pro'), (3.0, 'pro')")
    misses = compile_cache.stats["misses"]
    assert _per_plan(duckdb_engine(retyped))[0] == {"pro": (1, 20.5)}
    assert compile_cache.stats["misses"] > misses


def test_literals_are_part_of_the_key():
    engine = duckdb_engine(_store([(5, "pro"), (20, "pro"), (30, "team")]))
    t = engine.table("orders")
    counts = [engine.execute(t.filter(t.amount > limit).count().as_table()).to_pylist()[0] for limit in (1, 10, 25)]
    assert [list(c.values())[0] for c in counts] == [3, 2, 1]
    assert compile_cache.stats["hits"] == 0


def test_parameters_are_compiled_each_time():
    engine = duckdb_engine(_store([(5, "pro"), (20, "pro")]))
    t = engine.table("orders")
    limit = ibis.param("int64")
    expr = t.filter(t.amount > limit).count()
    assert [engine.backend.execute(expr, params={limit: v}) for v in (1, 10, 30)] == [2, 1, 0]
    assert compile_cache.stats == {"hits": 0, "misses": 0, "uncached": 3}


def test_tables_held_in_memory_are_not_kept():
    engine = duckdb_engine(_store([(5, "pro")]))
    t = engine.table("orders")
    for plans in (["pro"], ["pro"], ["team"]):
        wanted = ibis.memtable({"plan": plans})
        expr = t.filter(t.plan.isin(wanted.plan)).count().as_table()
        engine.execute(expr)
    assert compile_cache._entries == {} and compile_cache.stats == {"hits": 0, "misses": 0, "uncached": 3}


def test_the_cache_keeps_its_size(monkeypatch):
    monkeypatch.setattr(compile_cache, "SIZE", 3)
    engine = duckdb_engine(_store([(5, "pro")]))
    t = engine.table("orders")
    for limit in range(6):
        engine.execute(t.filter(t.amount > limit).select("plan"))
    assert len(compile_cache._entries) == 3
    engine.execute(t.filter(t.amount > 0).select("plan"))  # dropped: compiled again
    assert compile_cache.stats["hits"] == 0
    monkeypatch.setattr(compile_cache, "SIZE", 0)  # off
    compile_cache.clear()
    engine.execute(t.filter(t.amount > 0).select("plan"))
    assert compile_cache._entries == {} and compile_cache.stats == {"hits": 0, "misses": 0, "uncached": 0}


def _answers(workspace) -> dict:
    """Each analysis's result as JSON, less the map's `generated_at` (the time it was built)."""
    with Workspace(workspace) as ws:
        out = {a.name: json.loads(json.dumps(ws.run(a.name, **a.example), default=str, sort_keys=True))
               for a in REGISTRY}
    out["map"].pop("generated_at")
    return out


def test_every_analysis_answers_the_same_from_cached_sql(ingested_demo):
    """Every analysis of the registry on the demo, twice, on new engines: the first time each statement is
    compiled (and its SQL stored), the second time each comes from the cache."""
    workspace = ingested_demo(60, 7).workspace
    compiled = _answers(workspace)
    hits, misses = compile_cache.stats["hits"], compile_cache.stats["misses"]
    cached = _answers(workspace)
    hits, misses = compile_cache.stats["hits"] - hits, compile_cache.stats["misses"] - misses
    # no statement compiled again; the registry runs about 140 of them here (the first run one more: 141)
    assert hits > 100 and misses == 0, (hits, misses)
    for a in REGISTRY:
        assert cached[a.name] == compiled[a.name], a.name


def test_a_table_made_in_python_is_read_from_cached_sql_and_released_with_the_scope():
    """engine.in_memory: two engines each read their own rows through one compiled statement; a different
    literal is a different statement; the table goes when its scope closes."""
    import pyarrow as pa

    def plans(engine, rows, over):
        with engine.scope():
            t = engine.in_memory(pa.table({"amount": pa.array([a for a, _ in rows], pa.int64()),
                                           "plan": pa.array([p for _, p in rows], pa.string())}))
            big = t.filter(t.amount > over)
            expr = big.group_by("plan").agg(n=big.count()).order_by("plan")
            got = {r["plan"]: r["n"] for r in engine.execute(expr).to_pylist()}
            name = t.op().name
        assert engine.backend.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                                          [name]).fetchone()[0] == 0
        return got

    first_rows, second_rows = [(5, "pro"), (20, "pro"), (30, "team")], [(50, "free"), (9, "pro"), (70, "free")]
    assert plans(duckdb_engine(duckdb.connect()), first_rows, 10) == {"pro": 1, "team": 1}
    misses, hits = compile_cache.stats["misses"], compile_cache.stats["hits"]
    assert plans(duckdb_engine(duckdb.connect()), second_rows, 10) == {"free": 2}
    assert compile_cache.stats["misses"] == misses and compile_cache.stats["hits"] > hits
    assert plans(duckdb_engine(duckdb.connect()), second_rows, 60) == {"free": 1}
    assert compile_cache.stats["misses"] == misses + 1


def test_churn_features_at_a_new_date_come_from_cached_sql(ingested_demo, monkeypatch):
    """The churn features (scoring at each refresh) read their dates and scored texts from tables, not
    literals: features at a later date, on a new engine, compile nothing, and equal those computed with no cache."""
    import datetime as dt

    from journeymap.insights.risk.churn_model import extra_features
    from journeymap.insights.risk.features import features_at

    with Workspace(ingested_demo(60, 7).workspace) as ws:
        latest = ws.con.execute("SELECT max(ts) FROM journey_events").fetchone()[0]

        def features(at):
            engine = duckdb_engine(ws.con)
            with engine.scope():
                return features_at(engine, ws.definition, at, extra_features(engine, ws.definition))

        features(latest - dt.timedelta(days=7))
        before = dict(compile_cache.stats)
        cached = features(latest)
        assert compile_cache.stats["misses"] == before["misses"] and compile_cache.stats["hits"] > before["hits"]
        assert compile_cache.stats["uncached"] == before["uncached"]
        assert "sentiment" in cached.columns and cached["sentiment"].notna().any()
        monkeypatch.setattr(compile_cache, "SIZE", 0)
        compiled = features(latest)
    assert cached.equals(compiled)
