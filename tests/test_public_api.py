"""The public API of journeymap.insights: one subpackage per concern, each with a pinned ``__all__``.

Changing a subpackage's exports is deliberate: update the pinned list here in the same change.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import journeymap.insights

PINNED = {
    "journeymap.insights.value": [
        "BetaGeometricBetaBinomial",
        "BetaGeometricNBD",
        "GammaGamma",
        "ShiftedBetaGeometric",
        "account_lifetimes",
        "cohort_counts",
        "lifetime_value",
        "observed_survival",
        "read_spend",
    ],
    "journeymap.insights.risk": [
        "ChurnModel",
        "FeatureBuilder",
        "TimeSplit",
        "as_datetime",
        "expansion_signals",
        "feature_columns",
        "features_at",
        "health_report",
        "healthy_reference",
        "reason_codes",
        "risk_report",
        "snapshots",
        "time_split",
    ],
    "journeymap.insights.voice": [
        "GROUPS",
        "SentimentScores",
        "Theme",
        "ThemeResult",
        "Transcript",
        "TranscriptError",
        "add_interviews",
        "blend_emotion",
        "find_themes",
        "find_themes_embedded",
        "parse_transcript",
        "representative_quotes",
        "score_texts",
        "stage_sentiment",
        "text_rows",
        "voice",
    ],
    "journeymap.insights.map": ["SECTIONS", "build_map", "emotion"],
    "journeymap.insights.improvements": ["measure"],
    "journeymap.insights.experiments": ["experiment_result", "find_experiment", "map_experiments", "srm_test",
                                        "summary"],
}

# journeymap.insights itself re-exports only the four CLV models (lazily, so scipy loads on first use).
TOP_LEVEL = ["BetaGeometricBetaBinomial", "BetaGeometricNBD", "GammaGamma", "ShiftedBetaGeometric"]

SUBPACKAGES = ["experiments", "improvements", "map", "risk", "value", "voice"]
MODULES = ["conformance", "friction", "moments"]  # concerns of their own: plain modules of journeymap.insights

INSIGHTS_DIR = Path(journeymap.insights.__file__).parent
FORBIDDEN = ("journeymap.workspace", "journeymap.report", "journeymap.server", "journeymap.cli")


def test_layout():
    found = {m.name: m.ispkg for m in pkgutil.iter_modules([str(INSIGHTS_DIR)])}
    assert found == {**{p: True for p in SUBPACKAGES}, **{m: False for m in MODULES}}
    assert sorted(PINNED) == [f"journeymap.insights.{p}" for p in SUBPACKAGES]


@pytest.mark.parametrize("package", sorted(PINNED))
def test_all_is_pinned(package):
    mod = importlib.import_module(package)
    assert mod.__all__ == PINNED[package]
    assert mod.__all__ == sorted(set(mod.__all__)), "__all__ is sorted and has no duplicates"


@pytest.mark.parametrize("package", sorted(PINNED))
def test_every_name_in_all_is_importable(package):
    mod = importlib.import_module(package)
    for name in mod.__all__:
        namespace: dict = {}
        exec(f"from {package} import {name}", namespace)  # the import statement users write
        assert namespace[name] is getattr(mod, name)
        assert not isinstance(namespace[name], types.ModuleType), f"{package}.{name} is a module, not an API name"


@pytest.mark.parametrize("package", sorted(PINNED))
def test_no_export_hides_a_submodule(package):
    # A re-exported function named like a submodule (voice.voice, map.pain_points) would make
    # `package.<name>` ambiguous; every submodule must stay reachable as a module.
    mod = importlib.import_module(package)
    for sub in pkgutil.iter_modules(mod.__path__):
        assert sub.name not in mod.__all__
        submodule = importlib.import_module(f"{package}.{sub.name}")
        assert getattr(mod, sub.name) is submodule


def test_insights_does_not_reexport_flatly():
    assert journeymap.insights.__all__ == TOP_LEVEL
    for names in PINNED.values():
        for name in set(names) - set(TOP_LEVEL):
            assert name not in journeymap.insights.__all__
            attr = getattr(journeymap.insights, name, None)  # `voice` is the subpackage here, not the function
            assert attr is None or isinstance(attr, types.ModuleType), f"journeymap.insights re-exports {name}"
    for name in TOP_LEVEL:
        assert getattr(journeymap.insights, name) is getattr(journeymap.insights.value, name)


def test_importing_insights_imports_no_subpackage():
    code = ("import sys, journeymap.insights;"
            "loaded = sorted(m for m in sys.modules if m.startswith('journeymap.insights.'));"
            "assert not loaded, loaded")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def _imported_modules(path: Path) -> list[str]:
    """Every module a file imports, at top level or inside functions, and every dotted journeymap string."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            names.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("journeymap."):
            names.append(node.value)  # importlib.import_module targets
    return names


def test_insights_never_imports_upper_layers():
    files = sorted(INSIGHTS_DIR.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        for name in _imported_modules(path):
            assert not name.startswith("."), f"{path.name}: use absolute imports ({name})"
            assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN), f"{path}: imports {name}"
