"""Improvements that are owned and measured (docs/improvements.md).

- ``store``: the `improvements` and `improvement_history` tables, and the one way to add, change and read them.
- ``series``: the weekly series of an improvement's metric, computed by the engine on the store.
- ``its``: an interrupted time series (segmented regression with Newey-West errors).
- ``did``: difference-in-differences against a comparison series the improvement should not affect.
- ``power``: the minimum detectable effect from the pre-period's noise, and the weeks still needed.
- ``effect``: which method applies, the effect with its 95% interval, and the plain verdict.

Nothing here imports the analyses layer; the CLI, API and map call ``effect.measure``.
"""
