"""The first things a user sees: --version, help, init, the map's default output, serve's addresses, and hints that
name the whole command."""

from __future__ import annotations

import html
import json
import re
import tomllib
from pathlib import Path

import click
import pytest
import typer

import journeymap
from conftest import ROOT, invoke_cli, serve_in_process
from journeymap.cli.main import app
from test_tracking_api import Server, quick_workspace

EVENTS = ["customer_id,event,ts", "ann,pricing_viewed,2025-03-01T09:00:00", "ann,signup_completed,2025-03-01T09:05:00",
          "bob,pricing_viewed,2025-03-02T10:00:00"]


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A workspace from `journeymap init`, with three events."""
    ws = tmp_path / "acme"
    invoke_cli("init", str(ws))
    export = tmp_path / "events.csv"
    export.write_text("\n".join(EVENTS) + "\n")
    invoke_cli("ingest", str(export), "-w", str(ws))
    return ws


# -- --version -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_package_version(flag):
    out = invoke_cli(flag)
    assert out.stdout == f"journeymap {journeymap.__version__}\n"
    assert journeymap.__version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


# -- help --------------------------------------------------------------------------------------------------------


def _commands(group: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    for name, command in getattr(group, "commands", {}).items():
        out += _commands(command, (*path, name))
    return out


def test_help_shows_no_type_after_a_flag():
    """Typer writes `<bool>` after a flag as if it took a value (`--json <bool>`); no help page shows one."""
    commands = _commands(typer.main.get_command(app))
    assert ("keys", "create") in commands and ("map",) in commands and ("loads",) in commands
    for path in commands:
        text = invoke_cli(*path, "--help").stdout
        assert "--help" in text and "<bool>" not in text, path
    assert "--no-force" not in invoke_cli("init", "--help").stdout
    assert "--no-replace" not in invoke_cli("ingest", "--help").stdout
    assert "--no-strict" not in invoke_cli("ingest", "--help").stdout
    # options that take a value still say which
    assert re.search(r"--workspace\s+-w\s+<path>", invoke_cli("map", "--help").stdout)


# -- init --------------------------------------------------------------------------------------------------------


def test_init_on_a_workspace_says_to_pass_force(workspace):
    again = invoke_cli("init", str(workspace), check=False)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert "pass --force" in again.stderr and f"`journeymap init {workspace} --force`" in again.stderr
    (workspace / "journeymap.yml").write_text("# mine\n")
    invoke_cli("init", str(workspace), "--force")
    assert "stages:" in (workspace / "journeymap.yml").read_text()  # the template again
    assert invoke_cli("loads", "-w", str(workspace), "--json").stdout.count('"load_id"') == 1  # the store is kept


# -- map ---------------------------------------------------------------------------------------------------------


def test_map_without_out_or_json_writes_the_html_into_the_workspace(workspace, tmp_path):
    target = workspace / "journey-map.html"
    out = invoke_cli("map", "-w", str(workspace), "--no-insights")
    assert target.is_file() and "<html" in target.read_text()[:500].lower()
    assert f"wrote {target}" in out.stdout and '"stages"' not in out.stdout  # a path, not the JSON
    target.unlink()

    model = json.loads(invoke_cli("map", "-w", str(workspace), "--no-insights", "--json").stdout)
    assert model["events"] == 3 and not target.exists()
    elsewhere = tmp_path / "elsewhere.html"
    both = invoke_cli("map", "-w", str(workspace), "--no-insights", "--json", "--out", str(elsewhere))
    assert elsewhere.is_file() and json.loads(both.stdout)["events"] == 3 and not target.exists()


# -- serve -------------------------------------------------------------------------------------------------------


def test_serve_prints_where_the_web_app_is(tmp_path):
    ws, _ = quick_workspace(tmp_path / "served")
    server = Server(ws).start()
    try:
        log = server.log.read_text()
    finally:
        server.stop()
    assert f"{server.url}/app/" in log and f"{server.url}/api/v1/" in log and f"{server.url}/v1/" in log
    assert f"journeymap keys create --kind read --name NAME --workspace {ws}" in log


def test_serve_on_every_interface_shows_an_address_a_browser_opens():
    from journeymap.cli.serve import addresses

    lines = "\n".join(addresses(Path("acme"), "0.0.0.0", 8000))
    assert "http://127.0.0.1:8000/app/" in lines and "listening on 0.0.0.0" in lines
    assert "http://[::1]:8000/app/" in "\n".join(addresses(Path("acme"), "::", 8000))


# -- hints name the whole command ----------------------------------------------------------------------------------


FULL = "journeymap keys create --kind read --name NAME"


def test_the_login_page_and_401s_name_the_whole_keys_command(tmp_path):
    ws, _ = quick_workspace(tmp_path / "site")
    with serve_in_process(ws) as client:
        assert FULL in html.unescape(client.get("/app/login").text)
        bad = client.post("/app/login", data={"key": "jm_r_nope", "next": "/app/map"})
        assert bad.status_code == 401 and FULL in html.unescape(bad.text)
        api = client.get("/api/v1/map")
        assert api.status_code == 401 and FULL in api.json()["detail"]


def test_every_keys_create_hint_in_the_source_names_the_key():
    """`keys create` needs --name: a hint without it fails when followed."""
    for path in (ROOT / "src").rglob("*"):
        if path.suffix in (".py", ".html", ".md"):
            for line in path.read_text().splitlines():
                if "keys create --kind" in line:
                    assert "--name" in line, f"{path}: {line.strip()}"
