"""Schemathesis against the running server's OpenAPI (`/-/openapi.json`): no input to /api/v1 is a server error.

Runs schemathesis 4's CLI (`python -m schemathesis.cli run`: it takes a URL, not an ASGI app) as a subprocess
against the real `journeymap serve` on a copy of test_json_api.py's demo (the same data and keys), with the read
key, checking `not_a_server_error` on every /api/v1 operation: the examples and fuzzing phases, at most 15
generated cases per operation (set JOURNEYMAP_SCHEMATHESIS_PHASES=examples,coverage,fuzzing for boundary values
and every enum value too). The model-based analyses (map, risk, health, voice, friction, moments)
take seconds per distinct valid input, so they get invalid inputs only (their valid defaults are exercised
by test_json_api.py): an unbounded fuzz of them takes minutes. An experiment's name, like an account id, is the
data's: the demo's `pricing_page` (an unknown name is test_experiments.py's).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from test_json_api import Demo, busiest_account
from test_tracking_api import Server

pytestmark = pytest.mark.slow  # 40-70 s on the shared 2-core machine

PHASES = os.environ.get("JOURNEYMAP_SCHEMATHESIS_PHASES", "examples,fuzzing")
"""Add `coverage` (boundary values, every enum value; about 60-80 s more) with JOURNEYMAP_SCHEMATHESIS_PHASES."""
HEAVY = "^/api/v1/(map|risk|health|voice|friction|moments)$"
CONFIG = """
[[operations]]
include-path-regex = "{heavy}"
generation.mode = "negative"

[[operations]]
include-path = "/api/v1/accounts/{{account_id}}/timeline"
parameters = {{ account_id = "{account}" }}

[[operations]]
include-path = "/api/v1/experiment"
parameters = {{ name = "pricing_page" }}
"""


@pytest.fixture(scope="module")
def served(demo_copy):
    """test_json_api.py's demo, served by the real `journeymap serve` on a loopback port."""
    demo = Demo(demo_copy(600, 3))
    server = Server(demo.workspace).start(timeout=60)
    try:
        yield demo, server
    finally:
        server.stop()  # asserts a clean shutdown and no traceback in the server's log


def test_no_input_is_a_server_error(served, tmp_path):
    demo, server = served
    account = busiest_account(demo)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(heavy=HEAVY, account=account))
    proc = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color", "run",
         f"{server.url}/-/openapi.json", "--checks", "not_a_server_error", "-H", f"Authorization: Bearer {demo.read}",
         "--include-path-regex", "^/api/v1/", "--phases", PHASES, "--max-examples", "15",
         "--seed", "7", "--generation-database", "none", "--request-timeout", "120", "--workers", "1"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "120"}, cwd=tmp_path,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert re.search(r"Tested: 28\b", output), output  # every /api/v1 operation (18 analyses, the registry, 5 more, 4 improvements)
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated and generated.group(1) == generated.group(2) and int(generated.group(1)) > 100, output
    print(output[output.find("SUMMARY"):])
