"""The registry is the one description of every analysis: the CLI, the JSON API, the web app and the Python
API accept the same options with the same defaults, say the same thing about a bad value, and return the
same numbers on the demo. The README's table of analyses is the registry's."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import click
import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from journeymap.analyses import REGISTRY, get
from journeymap.analyses.base import options
from journeymap.analyses.catalog import markdown
from journeymap.cli.main import app as cli_app
from journeymap.server.app import create_app
from journeymap.server.keys import create_key
from journeymap.workspace import Workspace

# One xdist worker runs the module: spread over two, each ran every analysis through the CLI (`cli_results`).
pytestmark = pytest.mark.xdist_group("registry")

ROOT = Path(__file__).resolve().parents[1]
NAMES = [a.name for a in REGISTRY]
DEDICATED = {"funnel": "/app/funnel", "paths": "/app/paths", "retention": "/app/retention", "lifecycle": "/app/lifecycle",
             "conformance": "/app/conformance"}
"""Analyses with a page of their own whose form is the analysis's options (with charts)."""


def _pages(name: str) -> list[str]:
    """The web app's pages that run the analysis from a form: /app/analyses/NAME for every analysis."""
    return [f"/app/analyses/{name}", *([DEDICATED[name]] if name in DEDICATED else [])]
SURFACE_FLAGS = {"--workspace", "-w", "--json", "--help"}
METHOD = {"map": "journey_map"}


def _surfaces(analysis, name: str) -> tuple[str, ...]:
    return next(o.surfaces for o in analysis.options if o.name == name)


def _strict_json(text: str):
    """JSON as a strict parser reads it: a bare NaN or Infinity fails."""
    def refuse(constant):
        raise AssertionError(f"bare {constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def workspace(ingested_demo, tmp_path_factory) -> Path:
    """A copy of the 300-account demo (the server writes a journal into it)."""
    target = tmp_path_factory.mktemp("registry") / "ws"
    shutil.copytree(ingested_demo(300, 7).workspace, target)
    return target


def _cli(*args: str):
    return CliRunner().invoke(cli_app, list(args))


def _cli_args(analysis, params: dict) -> list[str]:
    """Options as the CLI takes them: a positional one (`experiment NAME`) as an argument, the rest as flags."""
    positional = {o.key for o in analysis.options if o.positional}
    args = [str(v) for k, v in params.items() if k in positional]
    for key, value in params.items():
        if key not in positional:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


@pytest.fixture(scope="module")
def cli_results(workspace) -> dict[str, dict]:
    """Every analysis through the CLI with only its example options: the registry's defaults."""
    out = {}
    for a in REGISTRY:
        res = _cli(a.name, "-w", str(workspace), "--json", *_cli_args(a, a.example))
        assert res.exit_code == 0, (a.name, res.output)
        out[a.name] = _strict_json(res.stdout)
    return out


@pytest.fixture(scope="module")
def server(workspace, cli_results):
    """The server in-process (ASGI) on the same copy, after the CLI runs: it holds the store while it runs."""
    ws = Workspace(workspace)
    _, token = create_key(ws.con, "read", "registry-test")
    ws.close()
    with TestClient(create_app(workspace)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        client.cookies.set("jm_read", token)
        yield client


def _api(server, name: str, params: dict):
    return server.get(f"/api/v1/{name}", params=params)


def _comparable(name: str, result: dict) -> dict:
    result = dict(result)
    if name == "map":
        result.pop("generated_at")
    return result


# -- one set of options ---------------------------------------------------------------------------------


def _click_command(name: str) -> click.Command:
    return typer.main.get_command(cli_app).commands[name]


@pytest.mark.parametrize("name", NAMES)
def test_cli_flags_are_the_registry_options(name):
    analysis = get(name)
    command = _click_command(name)
    flags = {f for p in command.params for f in (*p.opts, *p.secondary_opts)}
    want = {o.name if o.positional else o.flag for o in analysis.options if "cli" in _surfaces(analysis, o.name)}
    view = {o.flag for o in options(analysis.view)} if analysis.view else set()
    extra = {"--out", "--no-insights"} if name == "map" else set()  # the map's HTML file; --insights' negation
    assert flags - SURFACE_FLAGS == want | view | extra
    for p in command.params:  # a flag never carries a default of its own: the registry's applies
        if p.name in {o.name for o in analysis.options} and not getattr(p, "is_flag", False):
            assert p.default is None, (name, p.name)
    for o in analysis.options:  # the help says the registry's default
        if o.positional:
            continue
        help_text = next(p.help for p in command.params if o.flag in p.opts or o.flag in p.secondary_opts)
        help_text = help_text.replace("\\[", "[")  # Rich markup escaped, so [brackets] print as written
        if o.kind not in ("bool", "list") and o.default is not None:
            assert f"[default: {o.default}]" in help_text, (name, o.flag)


@pytest.mark.parametrize("name", NAMES)
def test_api_parameters_are_the_registry_options(server, name):
    analysis = get(name)
    spec = server.get("/-/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"][f"/api/v1/{name}"]["get"]["parameters"]}
    want = {o.key: o for o in analysis.options if "api" in _surfaces(analysis, o.name)}
    assert set(params) == set(want)
    for key, o in want.items():
        assert params[key]["required"] == o.required
        assert params[key]["schema"].get("default") == o.default, (name, key)
        assert params[key]["description"] == o.help


@pytest.mark.parametrize("name", NAMES)
def test_web_form_is_the_registry_options(server, name):
    analysis = get(name)
    want = {o.key: o for o in analysis.options if "web" in _surfaces(analysis, o.name)}
    for page in _pages(name):
        twin = server.get(f"{page}.json", params=analysis.example)
        assert twin.status_code == 200, twin.text
        form = {f["name"]: f for f in twin.json()["form"]}
        assert set(form) == set(want), page
        for key, o in want.items():
            assert form[key]["default"] == o.default and form[key]["help"] == o.help, (page, key)
        html = server.get(page, params=analysis.example).text
        for key in want:
            assert f'name="{key}"' in html, (page, key)


def test_help_prints_brackets_as_written():
    """Rich would read `journeymap[embeddings]` in a help text as markup and drop it."""
    res = CliRunner().invoke(cli_app, ["voice", "--help"], env={"COLUMNS": "300"})
    assert "pip install 'journeymap[embeddings]'" in res.stdout and "[default: tfidf]" in res.stdout


def test_python_api_has_every_analysis():
    for a in REGISTRY:
        assert callable(getattr(Workspace, METHOD.get(a.name, a.name))), a.name


# -- one default and one number ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_cli_api_and_web_return_the_same_numbers(server, cli_results, name):
    """The same analysis with no options but its example: CLI == API (each computed afresh) == web twin."""
    analysis = get(name)
    got = _api(server, name, analysis.example)
    assert got.status_code == 200, got.text
    api = _strict_json(got.text)
    assert _comparable(name, api) == _comparable(name, cli_results[name])
    for page in _pages(name):
        web = server.get(f"{page}.json", params=analysis.example).json()["result"]
        assert web == api, page
    if name == "map":
        web = server.get("/app/map.json").json()
        assert _comparable(name, web) == _comparable(name, api)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_follow_their_schema(cli_results, name):
    get(name).output.model_validate(cli_results[name])  # top-level keys documented, none undeclared


@pytest.mark.parametrize("name", [a.name for a in REGISTRY if a.unit == "by" and not a.slow])
def test_the_unit_defaults_to_the_definitions_level(workspace, name):
    """No --by means the definition's analysis.level (the demo's is account), for every analysis."""
    analysis = get(name)
    with Workspace(workspace) as ws:
        level = ws.definition.analysis.level
        default = ws.run(name, **analysis.example)
        explicit = ws.run(name, **analysis.example, by=level)
        other = ws.run(name, **analysis.example, by="person" if level == "account" else "account")
    assert level == "account"
    assert default == explicit
    assert default != other  # the unit matters here, so equality above is not vacuous


def test_slow_analyses_report_the_definitions_level(cli_results):
    for name in ("map", "moments", "voice", "friction"):
        assert cli_results[name]["level"] == "account", name


# -- one message for a bad value ------------------------------------------------------------------------------


def _bad_values():
    """A bad value for every option that can have one, per analysis: (name, key, value)."""
    out = []
    for a in REGISTRY:
        for o in a.options:
            if "api" not in _surfaces(a, o.name):
                continue
            if o.kind == "choice":
                out.append((a.name, o.key, "nonsense"))
            elif o.kind in ("int", "float"):
                out.append((a.name, o.key, "many"))
                if o.ge is not None:
                    out.append((a.name, o.key, str(o.ge - 1)))
            elif o.name in ("window", "within", "horizon", "tolerance"):
                out.append((a.name, o.key, "soon"))
            elif o.name in ("date_from", "date_to", "at"):
                out.append((a.name, o.key, "0001-01-01"))
    return out


@pytest.mark.parametrize(("name", "key", "value"), _bad_values())
def test_a_bad_value_gets_one_message_everywhere(server, workspace, name, key, value):
    analysis = get(name)
    params = {**analysis.example, key: value}
    api = _api(server, name, params)
    assert api.status_code == 422, api.text
    body = api.json()
    assert body["error"] == "option" and body["detail"].startswith(f"--{key.replace('_', '-')}")
    cli = _cli(name, "--workspace", str(workspace), *_cli_args(analysis, params))
    assert cli.exit_code == 2
    assert " ".join(cli.stderr.split()).endswith(" ".join(body["detail"].split()))
    for page in _pages(name):
        web = server.get(f"{page}.json", params=params)
        assert web.status_code == 422 and web.json()["detail"] == body["detail"], page


PERIODS = [a.name for a in REGISTRY if "date_from" in a.params.model_fields]


def _span(workspace) -> tuple[dt.date, dt.date]:
    """The first and last day with an event, read from the store directly (identity calls are not events)."""
    with Workspace(workspace) as ws:
        first, last = ws.con.execute("SELECT min(ts)::DATE, max(ts)::DATE FROM journey_events "
                                     "WHERE type NOT IN ('identify', 'alias', 'group')").fetchall()[0]
    return first, last


def test_every_analysis_with_a_period_has_warnings():
    assert {"map", "funnel", "retention", "lifecycle", "stickiness", "moments", "friction", "conformance"} <= set(PERIODS)
    for name in PERIODS:
        assert "warnings" in get(name).output.model_fields, name


@pytest.mark.parametrize("name", PERIODS)
def test_a_period_without_events_is_said_everywhere(server, workspace, name):
    """--from after the last event: every count is zero, and CLI, API and web twin say why, with the days the
    data covers; the same analysis over the data's own span says nothing of the kind."""
    analysis = get(name)
    first, last = _span(workspace)
    after = str(last + dt.timedelta(days=1))
    said = {"key": "from", "message": f"no event occurs from {after} on, so there is nothing to count",
            "suggestion": f"the data runs from {first} to {last}"}
    params = {**analysis.example, "from": after}
    api = _api(server, name, params)
    cli = _cli(name, "--workspace", str(workspace), *_cli_args(analysis, params))
    if api.status_code == 409:  # an analysis that cannot answer an empty period (conformance) says why it is empty
        assert f"({said['message']}: {said['suggestion']})" in api.json()["detail"]
        assert cli.exit_code == 3 and " ".join(api.json()["detail"].split()) in " ".join(cli.stderr.split())
        return
    assert api.status_code == 200, api.text
    assert said in api.json()["warnings"]
    assert cli.exit_code == 0, cli.output
    assert f"warning: from: {said['message']} ({said['suggestion']})" in " ".join(cli.stderr.split())
    for page in _pages(name):
        web = server.get(f"{page}.json", params=params).json()["result"]
        assert said in web["warnings"], page
    spanned = _api(server, name, {**analysis.example, "from": str(first), "to": str(last)}).json()
    assert not [w for w in spanned["warnings"] if w["key"] in ("from", "to")]


def test_an_unknown_option_is_named_with_a_suggestion(server, workspace):
    got = _api(server, "funnel", {"steps": "a,b", "windw": "3d"})
    assert got.status_code == 422
    assert got.json()["detail"] == "no option --windw (did you mean --window or --window-from?)"


def test_not_enough_data_says_what_to_add(tmp_path):
    """health on a workspace whose definition has no churn: not scikit-learn's "needs samples of at least 2
    classes", but which part of journeymap.yml to add (exit 3, HTTP 409)."""
    ws = Workspace.init(tmp_path / "w")
    export = tmp_path / "e.csv"
    export.write_text("customer_id,account_id,event,ts\n" + "".join(
        f"u{i},a{i},signed_up,2025-0{1 + i % 9}-0{1 + i % 9}T10:00:00\n" for i in range(40)))
    ws.ingest([str(export)])
    ws.close()
    for name in ("health", "risk"):
        res = _cli(name, "-w", str(ws.path))
        assert res.exit_code == 3, res.output
        text = " ".join(res.stderr.split())
        assert "`revenue:` section" in text and "churn" in text and "samples" not in text


# -- the docs are the registry's ------------------------------------------------------------------------------


def test_readme_table_is_the_registry():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- analyses:start[^>]*-->\n(.*?)\n<!-- analyses:end -->", readme, re.S)
    assert block, "README.md lost its generated table of analyses"
    assert block.group(1) == markdown(), "README's table differs: paste journeymap.analyses.catalog.markdown()"


def test_every_analysis_has_its_definition_page():
    for a in REGISTRY:
        assert (ROOT / a.doc).is_file(), a.doc


def test_the_registry_lists_itself_the_same_on_cli_and_api(server):
    cli = _strict_json(_cli("analyses", "--json").stdout)["analyses"]
    api = server.get("/api/v1/analyses").json()["analyses"]
    assert [a["name"] for a in cli] == [a["name"] for a in api] == NAMES
    for c, a in zip(cli, api, strict=True):
        cli_opts = {o["name"]: o["default"] for o in c["options"]}
        api_opts = {o["name"]: o["default"] for o in a["options"]}
        assert {k: v for k, v in cli_opts.items() if k in api_opts} == api_opts


def test_a_library_error_is_an_internal_error_never_an_answer(workspace, monkeypatch):
    """A ValueError from inside a library is a bug (exit 70, "please report"); one journeymap raised for the
    user keeps its message and exit 1."""
    import journeymap.engine.revenue as revenue

    def library_fails(*_a, **_k):
        return int("a library's ValueError")  # raised inside int(): not journeymap's frame

    monkeypatch.setattr(revenue, "mrr_bridge", library_fails)
    res = _cli("revenue", "-w", str(workspace))
    assert res.exit_code == 70 and "internal error" in res.stderr and "report" in res.stderr

    def ours(*_a, **_k):
        from journeymap.journey.durations import parse_duration

        return parse_duration("soon")  # journeymap's own ValueError, worded for the user

    monkeypatch.setattr(revenue, "mrr_bridge", ours)
    res = _cli("revenue", "-w", str(workspace))
    assert res.exit_code == 1 and "is not a duration" in res.stderr and "internal" not in res.stderr
