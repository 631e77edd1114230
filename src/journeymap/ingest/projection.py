"""Compile a source mapping into the DuckDB SQL that turns one raw batch into canonical rows.

The SQL is built once per file (per batch schema) and runs over each batch registered as `_raw`.
Placeholder identifiers become NULL here, so they can neither identify nor merge anyone downstream.
Rows whose `type` is a Segment call other than track (identify, group, page, screen, alias) and that
carry no event name get the name the tracking API gives that call (`identify`, `group`, `page_viewed`,
...), and an identify row without an email takes its traits' email, as the tracking API does.
"""

from __future__ import annotations

import json

import pyarrow as pa

from journeymap.events.schema import CANONICAL_FIELDS, PLACEHOLDER_IDS
from journeymap.events.validate import is_json_object
from journeymap.ingest.mapping import CANONICAL_ALIASES, FieldSpec, SourceMapping
from journeymap.ingest.segment import EVENT_NAMES

_ID_FIELDS = ("user_id", "anonymous_id", "email", "previous_id", "account_id")
_PLACEHOLDERS = "(" + ", ".join("'" + p.replace("'", "''") + "'" for p in sorted(PLACEHOLDER_IDS)) + ")"
_HAS_OFFSET = r"(Z|z|[+-]\d\d(:?\d\d)?)$"


def lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class TabularColumns:
    """Columns of a CSV or Parquet batch. CSV text is trimmed (`a, b` exports pad values); typed
    Parquet strings are exact values and are kept as they are, which also saves a copy of every string."""

    def __init__(self, schema: pa.Schema, trim: bool = True):
        self.types = {f.name: f.type for f in schema if f.name != "_row"}
        self.trim = trim

    def clean(self, expr: str) -> str:
        return f"NULLIF(trim({expr}), '')" if self.trim else f"NULLIF({expr}, '')"

    def has(self, name: str) -> bool:
        return name in self.types

    def text(self, name: str) -> str:
        t = self.types[name]
        if pa.types.is_struct(t) or pa.types.is_map(t) or pa.types.is_list(t):
            return f"to_json({ident(name)})::VARCHAR"
        return f"CAST({ident(name)} AS VARCHAR)"

    def native(self, name: str) -> tuple[str, pa.DataType]:
        return ident(name), self.types[name]

    def rest(self, exclude: set[str]) -> str:
        cols = [c for c in self.types if c not in exclude]
        if not cols:
            return "NULL::VARCHAR"
        return "json_object(" + ", ".join(f"{lit(c)}, {ident(c)}" for c in cols) + ")::VARCHAR"

    def pick(self, names: list[str]) -> str:
        cols = [c for c in names if c in self.types]
        if not cols:
            return "NULL::VARCHAR"
        return "json_object(" + ", ".join(f"{lit(c)}, {ident(c)}" for c in cols) + ")::VARCHAR"

    raw_json = "to_json(r)::VARCHAR"  # over `_rawin AS r`, for rejected rows only


class JsonColumns:
    """Keys of JSON Lines records; a key's presence is only known per row. Values are exact JSON
    strings, so they are not trimmed."""

    def clean(self, expr: str) -> str:
        return f"NULLIF({expr}, '')"

    def has(self, name: str) -> bool:
        return True

    def text(self, name: str) -> str:
        path = lit('$."' + name.replace('"', '\\"') + '"')
        return (
            f"CASE WHEN json_type(_line, {path}) IN ('OBJECT', 'ARRAY') THEN json_extract(_line, {path})::VARCHAR "
            f"ELSE json_extract_string(_line, {path}) END"
        )

    def native(self, name: str) -> tuple[str, pa.DataType]:
        return self.text(name), pa.string()

    def rest(self, exclude: set[str]) -> str:
        patch = json.dumps({c: None for c in sorted(exclude)})
        return f"json_merge_patch(_line, {lit(patch)})::VARCHAR"

    def pick(self, names: list[str]) -> str:
        if not names:
            return "NULL::VARCHAR"
        return "json_object(" + ", ".join(f"{lit(c)}, json_extract(_line, {lit('$.' + c)})" for c in names) + ")::VARCHAR"

    raw_json = "r._line"


def _field_text(spec: FieldSpec, cols) -> str:
    if spec.value is not None:
        expr = lit(spec.value)
    elif cols.has(spec.column):
        expr = cols.clean(cols.text(spec.column))
    else:
        expr = "NULL::VARCHAR"
    if spec.map:
        cases = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in spec.map.items())
        expr = f"CASE {expr} {cases} ELSE {expr} END"
    if spec.prefix:
        expr = f"({lit(spec.prefix)} || {expr})"
    if spec.default is not None:
        expr = f"coalesce({expr}, {lit(spec.default)})"
    return expr


def _timestamp(spec: Spec, cols, timezone: str) -> tuple[str, str]:
    """(parsed TIMESTAMP in UTC, the raw text) for a ts field."""
    if isinstance(spec, tuple):
        # Canonical input: a table uses its first alias column; a JSON record whichever it carries.
        raw = _spec_text(spec, cols)
        native, typ = cols.native(spec[0]) if len(spec) == 1 or not isinstance(cols, JsonColumns) else (raw, pa.string())
        spec = FieldSpec(column=spec[0])
    elif spec.value is not None:
        raw = lit(spec.value)
        native, typ = raw, pa.string()
    elif cols.has(spec.column):
        native, typ = cols.native(spec.column)
        raw = cols.clean(cols.text(spec.column))
    else:
        return "NULL::TIMESTAMP", "NULL::VARCHAR"

    def local(naive: str) -> str:
        # A time without an offset is read in the mapping's zone (UTC unless the mapping says otherwise).
        if timezone.upper() == "UTC":
            return naive
        return f"timezone({lit(timezone)}, {naive})::TIMESTAMP"

    fmt = spec.format or "iso"
    if pa.types.is_timestamp(typ):
        # Typed input needs no raw text; epoch arithmetic avoids a slow per-row time-zone cast.
        parsed = f"make_timestamp(epoch_us({native}))" if typ.tz else local(f"{native}::TIMESTAMP")
        return parsed, "NULL::VARCHAR"
    if pa.types.is_date(typ):
        return local(f"{native}::TIMESTAMP"), "NULL::VARCHAR"
    if fmt in ("unix", "unix_ms"):
        scale = "1000.0" if fmt == "unix_ms" else "1.0"
        return f"to_timestamp(TRY_CAST({raw} AS DOUBLE) / {scale})::TIMESTAMP", raw
    if fmt == "iso":
        parsed = (
            f"CASE WHEN regexp_matches({raw}, {lit(_HAS_OFFSET)}) THEN make_timestamp(epoch_us(TRY_CAST({raw} AS TIMESTAMPTZ))) "
            f"ELSE {local(f'TRY_CAST({raw} AS TIMESTAMP)')} END"
        )
        return parsed, raw
    if "%z" in fmt or "%Z" in fmt:
        return f"try_strptime({raw}, {lit(fmt)})::TIMESTAMPTZ::TIMESTAMP", raw
    return local(f"try_strptime({raw}, {lit(fmt)})::TIMESTAMP"), raw


Spec = FieldSpec | tuple[str, ...]
"""A mapping's FieldSpec, or for canonical input the alias columns to try in order."""


def _resolve(mapping: SourceMapping | None, cols) -> tuple[SourceMapping, dict[str, Spec], set[str]]:
    """The field specs to use: the mapping's, or the canonical columns found in the batch."""
    mapping = mapping or SourceMapping(source="other")
    specs: dict[str, Spec] = dict(mapping.fields)
    used: set[str] = set(mapping.used_columns())
    if not mapping.fields and not mapping.events:
        for name in CANONICAL_FIELDS:
            # JSON records may use any alias, row by row; a table has the columns it has.
            found = tuple(a for a in CANONICAL_ALIASES[name] if cols.has(a))
            if found:
                specs[name] = found
                used |= set(found)
    return mapping, specs, used


def _spec_text(spec: Spec, cols) -> str:
    if isinstance(spec, tuple):
        texts = [_field_text(FieldSpec(column=c), cols) for c in spec]
        return texts[0] if len(texts) == 1 else "coalesce(" + ", ".join(texts) + ")"
    return _field_text(spec, cols)


def projection_sql(
    mapping: SourceMapping | None, schema: pa.Schema | None, source_override: str | None, trim: bool = True,
    file_name: str = "",
) -> str:
    """SQL over `_raw` giving canonical text columns, `ts`, `ts_raw`, `_row` and `_spec`.

    For JSON Lines (`schema` None) `_raw` must hold only rows whose `_line` is a JSON object.
    `file_name` is part of the anonymous id of a row that names nobody, with `anonymous: true`."""
    cols = JsonColumns() if schema is None else TabularColumns(schema, trim)
    mapping, specs, used = _resolve(mapping, cols)
    common: dict[str, str] = {}
    for name in ("message_id", "channel", "user_id", "anonymous_id", "email", "previous_id", "account_id"):
        common[name] = _spec_text(specs[name], cols) if name in specs else "NULL::VARCHAR"
    common["type"] = f"lower({_spec_text(specs['type'], cols)})" if "type" in specs else "'track'"
    common["type"] = f"coalesce({common['type']}, 'track')" if "type" in specs else common["type"]
    source = source_override or mapping.source
    common["source"] = f"coalesce(lower({_spec_text(specs['source'], cols)}), {lit(source)})" if "source" in specs else lit(source)
    common["traits"] = _spec_text(specs["traits"], cols) if "traits" in specs else cols.pick(mapping.traits) if mapping.traits else "NULL::VARCHAR"
    if "type" in specs or "type" in mapping.fields:
        # Segment's identify: the email among the traits (the traits are validated later, so only read when valid).
        traits = common["traits"]
        common["email"] = (
            f"coalesce({common['email']}, CASE WHEN {common['type']} = 'identify' AND {is_json_object(traits)} "
            f"THEN NULLIF(json_extract_string({traits}, '$.email'), '') END)"
        )
    calls = " ".join(f"WHEN {lit(call)} THEN {lit(name)}" for call, name in EVENT_NAMES.items())
    raw_text = "_line" if schema is None else "to_json(_raw)::VARCHAR"
    anon = (
        f", {lit(file_name + ':')} || _row || ':' || left(md5({raw_text}), 12) AS _anon" if mapping.anonymous else ""
    )

    selects = []
    for i, ev in enumerate(mapping.event_specs()):
        event_spec = specs.get("event", ev.event) if not mapping.events else ev.event
        ts_spec = specs.get("ts", ev.ts) if not mapping.events else ev.ts
        ts, ts_raw = _timestamp(ts_spec, cols, mapping.timezone)
        if "properties" in specs:
            props = _spec_text(specs["properties"], cols)
            rest = cols.rest(used | set(mapping.traits)) if mapping.properties == "rest" else "NULL::VARCHAR"
            if rest != "NULL::VARCHAR":
                # Extra columns join the JSON properties; an invalid JSON value is left for validation to reject.
                props = (
                    f"CASE WHEN {props} IS NULL THEN {rest} WHEN {is_json_object(props)} "
                    f"THEN json_merge_patch({rest}, {props})::VARCHAR ELSE {props} END"
                )
        elif ev.properties is not None:
            props = cols.pick(ev.properties)
        elif mapping.properties == "rest":
            props = cols.rest(used | set(mapping.traits))
        else:
            props = cols.pick(list(mapping.properties))
        # An empty object and no properties are the same thing, whatever the format.
        event = _spec_text(event_spec, cols)
        if "type" in specs or "type" in mapping.fields:
            # A call other than track needs no event name: the call names it, as the tracking API does.
            event = f"coalesce({event}, CASE {common['type']} {calls} END)"
        fields = dict(common, event=event, properties=f"NULLIF({props}, '{{}}')")
        body = ", ".join(f"{expr} AS {name}" for name, expr in fields.items())
        where = f"WHERE {cols.clean(cols.text(ev.when))} IS NOT NULL" if ev.when and cols.has(ev.when) else ""
        if ev.when and not cols.has(ev.when):
            where = "WHERE FALSE"
        selects.append(f"SELECT _row, {i} AS _spec, {ts} AS ts, {ts_raw} AS ts_raw, {body}{anon} FROM _raw {where}")
    # Placeholder identifiers become NULL once each field is computed (an outer select, so each
    # field expression is evaluated once).
    ids = ", ".join(
        f"CASE WHEN lower({n}) IN {_PLACEHOLDERS} THEN NULL ELSE {n} END AS {n}" for n in _ID_FIELDS
    )
    sql = f"SELECT * REPLACE ({ids}) FROM (\n" + "\nUNION ALL\n".join(selects) + "\n)"
    if mapping.anonymous:
        # A row that names no person is its own anonymous respondent: file name, line and a hash of the row,
        # so re-ingesting the file gives the same ids (and adds nothing), and equal rows stay distinct.
        sql = (
            "SELECT * EXCLUDE (_anon) REPLACE (CASE WHEN user_id IS NULL AND anonymous_id IS NULL AND email IS NULL "
            f"THEN _anon ELSE anonymous_id END AS anonymous_id) FROM ({sql})"
        )
    return sql
