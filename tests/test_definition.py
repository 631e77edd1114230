"""journeymap.yml: validation messages name the key and the problem; the schema exports; init scaffolds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import journeymap.demo
from conftest import invoke_cli
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.durations import parse_duration
from journeymap.journey.load import DefinitionError, load_definition, parse_definition, parse_text, read_yaml
from journeymap.workspace import TEMPLATE

MINIMAL = {"stages": [{"id": "trial", "name": "Trial", "entry": "trial_started"}]}


def problems(data) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as exc:
        parse_definition(data)
    return exc.value.problems


def test_the_init_template_is_a_valid_definition():
    d = load_definition(TEMPLATE)
    assert [s.id for s in d.stages] == ["discovery", "evaluation", "onboarding", "adoption", "churned"]
    assert d.stages[-1].terminal and d.stages[-1].kind == "churn"
    assert [s.id for s in d.progression] == ["discovery", "evaluation", "onboarding", "adoption"]
    assert d.targets[0].numeric_value() == 3 * 86400


@pytest.mark.parametrize(
    "patch, key, message",
    [
        ({"stages": []}, "stages", "at least 1"),
        ({"stages": [{"id": "Trial", "name": "T", "entry": "x"}]}, "stages[0].id", "not a valid id"),
        ({"stages": [{"id": "t", "name": "T", "entry": {}}]}, "stages[0].entry", "needs at least one of"),
        ({"stages": [{"id": "t", "name": "T", "entry": "x", "colour": "red"}]}, "stages[0].colour", "Extra inputs"),
        ({"stages": [{"id": "t", "name": "T", "entry": {"where": {"plan": {"gt": 1, "lt": 5}}}}]},
         "stages[0].entry.where.plan", "exactly one operator"),
        ({"stages": [{"id": "c", "name": "C", "entry": "x", "kind": "churn"}]}, "stages[0]", "requires terminal"),
        ({"touchpoints": [{"id": "tp", "name": "TP", "match": "x", "stage": "nowhere"}]}, "(top level)",
         "touchpoints[0] (tp): unknown stage 'nowhere'"),
        ({"targets": [{"metric": "nps", "value": 40}]}, "targets[0]", "needs op"),
        ({"targets": [{"metric": "ttv_p50", "op": "<=", "value": "3 days"}]}, "targets[0].value", "is not a duration"),
        ({"targets": [{"metric": "conversion", "op": ">=", "value": "30%"}]}, "targets[0]", "needs stage"),
        ({"targets": [{"metric": "ces", "change": "-15%"}]}, "targets[0]", "needs baseline"),
        ({"targets": [{"metric": "happiness", "op": ">=", "value": 1}]}, "targets[0].metric", "Input should be"),
        ({"sources": {"crm": {"source": "hubspot"}}}, "(top level)", "sources.crm.source"),
        ({"sources": {"crm": {"fields": {"userid": "Contact"}}}}, "sources.crm.fields", "unknown canonical field 'userid'"),
    ],
)
def test_errors_name_the_key_and_the_problem(patch, key, message):
    found = problems({**MINIMAL, **patch})
    assert any(k == key and message in m for k, m in found), found


def test_duplicate_ids_are_refused():
    data = {"stages": [{"id": "a", "name": "A", "entry": "x"}, {"id": "a", "name": "A2", "entry": "y"}]}
    assert any("used twice" in m for _, m in problems(data))


def test_yaml_syntax_errors_give_the_line(tmp_path):
    f = tmp_path / "journeymap.yml"
    f.write_text("stages:\n  - id: a\n    name: [unclosed\n")
    with pytest.raises(DefinitionError) as exc:
        load_definition(f)
    assert str(f) in str(exc.value)
    assert exc.value.problems[0][0].startswith("line ")


@pytest.mark.parametrize("text", [
    TEMPLATE.read_text(), (Path(journeymap.demo.__file__).parent / "journeymap.yml").read_text(),
    "a: [1, 2.5, 1e3, .inf, 0x1f, 0o17, 1_000]\nb: {c: yes, d: no, e: ~, f: 2026-12-06, g: 2026-12-06T10:00:00Z}\n"
    "h: &x [1]\ni: *x\nj: 'quoted'\nk: |\n  block\n  text\n",
])
def test_yaml_read_through_libyaml_equals_pyyaml(text):
    assert read_yaml(text) == yaml.safe_load(text)


def test_a_yaml_error_reads_as_pyyaml_words_it():
    with pytest.raises(DefinitionError) as exc:
        parse_text("stages: [")
    assert exc.value.problems == [("line 1, column 10", "expected the node content, but found '<stream end>'")]


def test_shorthands_expand():
    d = parse_definition({"stages": [{"id": "a", "name": "A", "entry": ["x", "y"]}],
                          "personas": [{"id": "smb", "name": "SMB", "traits": {"tier": "smb", "employees": {"lt": 50}}}]})
    assert d.stages[0].entry.event == ["x", "y"]
    assert d.personas[0].traits["tier"].operator == ("eq", "smb")
    assert d.personas[0].traits["employees"].operator == ("lt", 50)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("12h", 43200), ("3d", 259200), ("2w", 1209600), ("1.5d", 129600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_cli_init_validate_and_schema(tmp_path):
    ws = tmp_path / "acme"
    invoke_cli("init", str(ws))
    assert (ws / "journeymap.yml").exists() and (ws / "data").is_dir() and (ws / "journeymap.duckdb").exists()
    again = invoke_cli("init", str(ws), check=False)
    assert again.returncode == 1 and "exists" in again.stderr
    ok = invoke_cli("validate", "--workspace", str(ws))
    assert "5 stages" in ok.stdout
    broken = yaml.safe_load((ws / "journeymap.yml").read_text())
    broken["stages"][1]["entry"] = {}
    (ws / "journeymap.yml").write_text(yaml.safe_dump(broken))
    bad = invoke_cli("validate", "--workspace", str(ws), check=False)
    assert bad.returncode == 1
    assert "stages[1].entry: a rule needs at least one of" in bad.stderr
    schema = json.loads(invoke_cli("schema").stdout)
    assert schema == JourneyDefinition.model_json_schema()
    assert "stages" in schema["required"]
