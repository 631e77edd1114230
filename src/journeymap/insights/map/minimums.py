"""The map's data minimums, in a module of their own so that the registry (analyses/map.py) can take them as
option defaults without importing the map's machinery (scipy, VADER) when the CLI starts."""

MIN_EMOTION_ANSWERS = 30
"""Survey answers a stage needs before the map shows its emotion (docs/metrics/surveys.md): fewer say more
about who happened to answer than about the stage. The registry's `map --min-answers` default."""
