"""The operational sections of journeymap.yml: the engine, the store, the server, the churn model's refits, data
retention and the default unit of analysis. They say how journeymap runs, not what the journey is."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from journeymap.errors import closest, did_you_mean
from journeymap.ingest.store import check_setting
from journeymap.journey.base import StrictModel
from journeymap.journey.durations import parse_duration


class EngineConfig(StrictModel):
    backend: Literal["duckdb", "spark"] = "duckdb"
    master: str | None = None
    remote: str | None = None
    path: str | None = Field(None, description="Spark: where the event Parquet lives.")


class StoreConfig(StrictModel):
    """DuckDB settings for every connection to the workspace store; JOURNEYMAP_* environment variables
    override each key (docs/store.md). Unset keys keep DuckDB's defaults, but checkpoint_threshold
    (journeymap's is 256MB)."""

    memory_limit: str | None = Field(
        None, description="Most memory DuckDB may use before it spills to temp_directory: 4GB, 512MiB, 50%. "
                          "DuckDB's default is 80% of RAM. Env: JOURNEYMAP_MEMORY_LIMIT.")
    threads: int | None = Field(None, description="DuckDB worker threads (default: all cores). Env: JOURNEYMAP_THREADS.")
    temp_directory: str | None = Field(
        None, description="Where DuckDB spills, relative to the workspace (default: journeymap.duckdb.tmp next to "
                          "the store). Env: JOURNEYMAP_TEMP_DIRECTORY.")
    preserve_insertion_order: bool | None = Field(
        None, description="false lets DuckDB reorder results without ORDER BY and use less memory; DuckDB's "
                          "default, true, is kept unless set (docs/store.md). Env: JOURNEYMAP_PRESERVE_INSERTION_ORDER.")

    checkpoint_threshold: str | None = Field(
        None, description="DuckDB writes a checkpoint once its write-ahead log grows past this: 256MB, 1GiB "
                          "(journeymap's default 256MB; DuckDB's own, 16MB, checkpoints at nearly every refresh of a "
                          "large store). Env: JOURNEYMAP_CHECKPOINT_THRESHOLD.")

    @field_validator("memory_limit", "threads", "temp_directory", "preserve_insertion_order", "checkpoint_threshold",
                     mode="before")
    @classmethod
    def _setting(cls, value: Any, info) -> Any:
        return None if value is None else check_setting(info.field_name, value)


def check_origin(value: str) -> str:
    """A browser origin, lower-cased: scheme http or https, a host, an optional port, nothing else.

    >>> check_origin("https://Shop.example.com:8443")
    'https://shop.example.com:8443'
    >>> check_origin("https://shop.example.com/")
    Traceback (most recent call last):
    ...
    ValueError: 'https://shop.example.com/' is not an origin: an origin has no path, query or fragment; did you mean 'https://shop.example.com'?
    """
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin: write scheme://host[:port], such as https://www.example.com")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} is not an origin: the port is not a number from 0 to 65535") from None
    origin = f"{parts.scheme.lower()}://{parts.hostname}" + (f":{port}" if port is not None else "")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{value!r} is not an origin: an origin has no user name; did you mean {origin!r}?")
    if parts.path or parts.query or parts.fragment or value.strip().endswith(("?", "#")):
        raise ValueError(f"{value!r} is not an origin: an origin has no path, query or fragment; did you mean {origin!r}?")
    return origin


class ServerConfig(StrictModel):
    """Settings of `journeymap serve` (docs/server.md)."""

    cors_origins: list[Annotated[str, AfterValidator(check_origin)]] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port], as a browser sends them) whose pages may call the tracking API "
                    "(/v1/*) from the browser: they get CORS headers; any other origin gets none. Default: none.")


REFIT_WORDS = {"daily": "1d", "weekly": "7d", "fortnightly": "14d", "monthly": "30d", "always": "0d"}


def check_refit(value: Any) -> str:
    """A refit schedule: a duration of the data's time such as '7d' ('0d': at every refresh).

    >>> check_refit("2w")
    '2w'
    >>> check_refit("weekly")
    Traceback (most recent call last):
    ...
    ValueError: 'weekly' is not a duration: write a number and one of s, m, h, d, w; did you mean '7d'?
    """

    text = str(value).strip() if isinstance(value, str | int | float) and not isinstance(value, bool) else None
    if text is None:
        raise ValueError(f"{value!r} is not a duration: write a number and one of s, m, h, d, w, e.g. '7d'")
    try:
        parse_duration(text)
    except ValueError:
        word = closest(text, REFIT_WORDS)
        hint = (f"did you mean {REFIT_WORDS[word[0]]!r}?" if word
                else f"did you mean '{text}d' (days)?" if text.replace(".", "", 1).isdigit() else "e.g. '7d'")
        raise ValueError(f"{text!r} is not a duration: write a number and one of s, m, h, d, w; {hint}") from None
    return text


class RiskConfig(StrictModel):
    """The churn model behind `journeymap risk` and the map's accounts at risk: fitted at refresh time,
    refitted on a schedule, and every paying account scored at each refresh (docs/metrics/health-and-risk.md)."""

    refit: Annotated[str, BeforeValidator(check_refit)] = Field(
        "7d", description="Refit the churn model once the data's latest event is this much later than the "
                          "data it was fitted on (a duration of the data's time: 1d, 7d, 2w; 0d refits at every "
                          "refresh). Between refits each refresh scores the accounts with the stored model. "
                          "A changed journeymap.yml or model version refits at once.")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    near = did_you_mean(str(key), cls.model_fields)
                    raise ValueError(f"{key!r} is not a risk setting (known: {', '.join(cls.model_fields)})"
                                     + (f"; {near}" if near else ""))
        return data

    @property
    def refit_seconds(self) -> float:
        return parse_duration(self.refit)


class Retention(StrictModel):
    """How long raw data is kept (docs/privacy.md)."""

    raw_events: str | None = Field(
        None, description="Drop raw events older than this on every refresh (ingest, `journeymap refresh`, the "
                          "server's loader), counted back from the latest event's time, not the clock: 400d, 52w. "
                          "The journey state is then that of the retained window. Default: keep everything.")

    @field_validator("raw_events")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError(f"{value!r} must be longer than 0 (e.g. '400d')")
        return value

    @property
    def raw_events_seconds(self) -> float | None:
        return None if self.raw_events is None else parse_duration(self.raw_events)


class Analysis(StrictModel):
    level: Literal["person", "account"] = "person"
    timezone: str = "UTC"
