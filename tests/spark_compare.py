"""The comparison of DuckDB and Spark results used by the Spark differential tests (docs/spark.md)."""

from __future__ import annotations

import math
import re

import pytest

_EXACT_FLOAT = re.compile(r"(^|_)(p\d{1,2}|median|percentile)(_|$)")


def same(duck, spark, path: str = "result") -> None:
    """Walk nested dicts and lists: identical keys, lengths and types; ints, strings, None and
    percentiles (keys like p50_seconds, median) exact; every other float within 1e-9 relative."""
    if isinstance(duck, bool) or duck is None or isinstance(duck, str):
        assert duck == spark, f"{path}: duckdb {duck!r} != spark {spark!r}"
    elif isinstance(duck, dict):
        assert isinstance(spark, dict), f"{path}: spark gave {type(spark).__name__}"
        assert list(duck) == list(spark), f"{path}: keys {list(duck)} != {list(spark)}"
        for k in duck:
            same(duck[k], spark[k], f"{path}.{k}")
    elif isinstance(duck, list | tuple):
        assert isinstance(spark, list | tuple) and len(duck) == len(spark), f"{path}: lengths {len(duck)} != {len(spark)}"
        for i, (x, y) in enumerate(zip(duck, spark, strict=True)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(duck, float) or isinstance(spark, float):
        assert isinstance(duck, float) and isinstance(spark, float), f"{path}: duckdb {duck!r} vs spark {spark!r}"
        key = path.rsplit(".", 1)[-1].split("[", 1)[0]
        if math.isnan(duck) or math.isnan(spark):
            assert math.isnan(duck) and math.isnan(spark), f"{path}: {duck!r} != {spark!r}"
        elif _EXACT_FLOAT.search(key):
            assert duck == spark, f"{path} (a percentile): duckdb {duck!r} != spark {spark!r}"
        else:
            assert spark == pytest.approx(duck, rel=1e-9, abs=1e-12), f"{path}: duckdb {duck!r} != spark {spark!r}"
    else:  # ints, dates, datetimes
        assert type(duck) is type(spark) and duck == spark, f"{path}: duckdb {duck!r} != spark {spark!r}"
