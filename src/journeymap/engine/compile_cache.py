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

An expression with parameters (or any option but `limit` and `pretty`), or over a table held in memory,
is compiled each time. The cache holds the latest `SIZE` entries.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable

import ibis.expr.operations as ops

SIZE = 2048
"""Entries kept (least recently used dropped); 0 turns the cache off."""

SCOPED = re.compile(r"_jm_(?:cache|share)_\d+_\d+")
"""Names the engine gives per call (engine.backends.Engine.materialize and share)."""

_CANONICAL = re.compile(r"_jm_scoped_(\d+)_")

_lock = threading.Lock()
_entries: OrderedDict[tuple, str] = OrderedDict()
stats = {"hits": 0, "misses": 0}
"""Lookups since the process started (or `clear`): what the tests and benchmarks read."""


def clear() -> None:
    with _lock:
        _entries.clear()
        stats.update(hits=0, misses=0)


def _canonical(op: ops.Node) -> tuple[ops.Node | None, list[str]]:
    """`op` with its tables unbound from their backend and the engine's scoped names replaced by their order
    of appearance, and those names in that order. None for an expression over a table held in memory
    (ibis.memtable): it is new at every call, and a key would keep its data alive."""
    scoped: list[str] = []
    in_memory = False

    def name(original: str) -> str:
        if not SCOPED.fullmatch(original):
            return original
        if original not in scoped:
            scoped.append(original)
        return f"_jm_scoped_{scoped.index(original)}_"

    def replace(node, kwargs):
        nonlocal in_memory
        if isinstance(node, ops.InMemoryTable):
            in_memory = True
            return node
        if isinstance(node, ops.DatabaseTable):
            return ops.UnboundTable(name(node.name), node.schema, node.namespace)
        if isinstance(node, ops.AliasedRelation) and SCOPED.fullmatch(node.name):
            args = dict(kwargs) if kwargs else dict(zip(node.__argnames__, node.__args__))
            return node.__recreate__({**args, "name": name(node.name)})
        return node.__recreate__(kwargs) if kwargs else node

    canonical = op.replace(replace)
    return (None if in_memory else canonical), scoped


def cached(compile: Callable[..., str], dialect: str) -> Callable[..., str]:
    """`compile` (an Ibis backend's) answering from the cache; installed on each engine's backend."""

    def compile_cached(expr, /, *, limit=None, params=None, pretty=False, **other) -> str:
        if params or other or not SIZE:
            return compile(expr, limit=limit, params=params, pretty=pretty, **other)
        op, scoped = _canonical(expr.op())
        if op is None:
            return compile(expr, limit=limit, params=params, pretty=pretty)
        key = (dialect, op, limit, pretty)
        with _lock:
            sql = _entries.get(key)
            if sql is not None:
                _entries.move_to_end(key)
                stats["hits"] += 1
        if sql is not None:
            return _CANONICAL.sub(lambda m: scoped[int(m.group(1))], sql)
        sql = compile(expr, limit=limit, params=params, pretty=pretty)
        if "_jm_scoped_" in sql or not set(SCOPED.findall(sql)) <= set(scoped):
            return sql  # a name the key does not hold (or our placeholder, in a literal): not cached
        stored = SCOPED.sub(lambda m: f"_jm_scoped_{scoped.index(m.group(0))}_", sql)
        with _lock:
            _entries[key] = stored
            stats["misses"] += 1
            while len(_entries) > SIZE:
                _entries.popitem(last=False)
        return sql

    compile_cached.cached = True
    return compile_cached
