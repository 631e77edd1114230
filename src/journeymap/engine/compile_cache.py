"""Compiled SQL by expression, shared by every engine of the process.

Ibis compiles an expression to SQL through sqlglot at every execution, and the metrics are the same
expressions again and again: each web page, JSON API call or CLI command builds a new engine on its own
connection (server.context), and compiling is most of what a small table costs (the brute-force reference
test on small logs spent 33 of its 81 s compiling 2,004 expressions, 1,908 of them seen before). The cache
keys an expression by its structure with the backend taken out: the tables are named by name, schema and
namespace, not by the connection that reads them, so two engines on one store share their entries, and two
stores whose tables have the same names and types do too (the SQL names tables, it does not hold them).

The engine names what it materializes or shares per call (`_jm_cache_<engine>_<n>`, `_jm_share_<engine>_<n>`,
engine.backends): those names are replaced by their order of appearance in the key and in the stored SQL, and
put back for the caller, so that a metric computed again on a new engine finds its SQL.

An expression with parameters (or any option but `limit` and `pretty`), or over a table held in memory
(ibis.memtable), is compiled each time (`stats["uncached"]` counts them): a small table made in Python goes
through Engine.in_memory instead, which names it as `materialize` does. The cache holds the latest `SIZE`
entries.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import ibis.expr.operations as ops

from journeymap.engine.recent import Recent

SIZE = 2048
"""Entries kept (least recently used dropped); 0 turns the cache off."""

SCOPED = re.compile(r"_jm_(?:cache|share)_\d+_\d+")
"""Names the engine gives per call (engine.backends.Engine.materialize and share)."""

_CANONICAL = re.compile(r"_jm_scoped_(\d+)_")

stats = {"hits": 0, "misses": 0, "uncached": 0}
"""Lookups since the process started (or `clear`), and compilations the cache could not keep (parameters, a
table held in memory, a name the key does not hold): what the tests and benchmarks read."""
_entries = Recent(lambda: SIZE, stats)


def clear() -> None:
    _entries.clear()


def _canonical(op: ops.Node) -> tuple[tuple | None, list[str]]:
    """A key for `op`: its graph written out node by node, children first, each node as its type and its
    arguments with child nodes given by their position, tables by name, schema and namespace (not by the
    backend that holds them), and the engine's scoped names by their order of appearance; and those names in
    that order. None for an expression over a table held in memory (ibis.memtable): it is new at every call,
    and a key would keep its data alive. Written out rather than rebuilt with the tables unbound (`op.replace`):
    rebuilding validates every node again, about half a second for the churn features' expression."""
    scoped: list[str] = []
    position: dict[ops.Node, int] = {}
    nodes: list[tuple] = []

    def name(original: str) -> str:
        if not SCOPED.fullmatch(original):
            return original
        if original not in scoped:
            scoped.append(original)
        return f"_jm_scoped_{scoped.index(original)}_"

    def value(v):
        if isinstance(v, ops.Node):
            return ("node", position[v])
        if isinstance(v, (tuple, list)):
            return ("seq", tuple(value(x) for x in v))
        if isinstance(v, dict):
            return ("map", tuple((value(k), value(x)) for k, x in v.items()))
        return v

    def describe(node: ops.Node) -> tuple:
        if isinstance(node, ops.DatabaseTable):
            return ("table", name(node.name), node.schema, node.namespace)
        args = node.__args__
        if isinstance(node, ops.AliasedRelation) and SCOPED.fullmatch(node.name):
            args = tuple(name(a) if n == "name" else a for n, a in zip(node.__argnames__, args, strict=True))
        return (type(node), tuple(value(a) for a in args))

    stack: list[tuple[ops.Node, bool]] = [(op, False)]
    while stack:  # children first, without recursion: an expression can nest deeper than Python's stack
        node, ready = stack.pop()
        if node in position:
            continue
        if isinstance(node, ops.InMemoryTable):
            return None, scoped
        if not ready:
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(node.__children__) if c not in position)
            continue
        position[node] = len(nodes)
        nodes.append(describe(node))
    return tuple(nodes), scoped


def cached(compile: Callable[..., str], dialect: str) -> Callable[..., str]:
    """`compile` (an Ibis backend's) answering from the cache; installed on each engine's backend."""

    def compile_cached(expr, /, *, limit=None, params=None, pretty=False, **other) -> str:
        if not SIZE:
            return compile(expr, limit=limit, params=params, pretty=pretty, **other)
        shape, scoped = (None, []) if params or other else _canonical(expr.op())
        if shape is None:
            _entries.count("uncached")
            return compile(expr, limit=limit, params=params, pretty=pretty, **other)
        key = (dialect, shape, limit, pretty)
        sql = _entries.get(key)
        if sql is not None:
            return _CANONICAL.sub(lambda m: scoped[int(m.group(1))], sql)
        sql = compile(expr, limit=limit, params=params, pretty=pretty)
        if "_jm_scoped_" in sql or not set(SCOPED.findall(sql)) <= set(scoped):
            _entries.count("uncached")
            return sql  # a name the key does not hold (or our placeholder, in a literal): not cached
        stored = SCOPED.sub(lambda m: f"_jm_scoped_{scoped.index(m.group(0))}_", sql)
        _entries.put(key, stored)
        return sql

    compile_cached.cached = True
    return compile_cached
