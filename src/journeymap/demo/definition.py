"""The journeymap.yml the demo writes, kept as data next to this module (`demo/journeymap.yml`):
source mappings for each export, the stages with the events that enter them, touchpoints, personas,
milestones, surveys, and targets that cite SAAS_BENCHMARKS.md.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def definition_text() -> str:
    return files("journeymap.demo").joinpath("journeymap.yml").read_text(encoding="utf-8")


def write_definition(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(definition_text(), encoding="utf-8")
    return path
