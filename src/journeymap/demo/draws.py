"""Vectorised drawing helpers shared by the simulation steps."""

from __future__ import annotations

import numpy as np


def rows_choice(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of a (n, k) matrix of (unnormalised) probabilities."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return (u[:, None] > cum).sum(axis=1)


def hex_ids(rng: np.random.Generator, n: int, prefix: str) -> list[str]:
    """Random-looking ids such as a browser's anonymous id: `a-1f3e9c0d-77ab01e2`."""
    hi = rng.integers(0, 2**32, n, dtype=np.uint64).tolist()
    lo = rng.integers(0, 2**32, n, dtype=np.uint64).tolist()
    return [f"{prefix}{h:08x}-{lw:08x}" for h, lw in zip(hi, lo, strict=True)]


def first_of_group(group: np.ndarray) -> np.ndarray:
    """True at the first row of each run of equal values in a sorted group column."""
    return np.concatenate([[True], group[1:] != group[:-1]]) if len(group) else np.zeros(0, bool)


def group_cumsum(group: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Running sum of x restarting at each group (rows sorted by group).

    >>> group_cumsum(np.array([0, 0, 1, 1, 1]), np.array([1, 2, 3, 4, 5])).tolist()
    [1, 3, 3, 7, 12]
    """
    if len(x) == 0:
        return np.asarray(x).copy()
    cs = np.cumsum(x)
    base = np.maximum.accumulate(np.where(first_of_group(group), np.arange(len(x)), 0))
    return cs - cs[base] + x[base]


def repeat_index(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For counts per owner: (owner of each row, the row's 0-based position within its owner).

    >>> [a.tolist() for a in repeat_index(np.array([2, 0, 3]))]
    [[0, 0, 2, 2, 2], [0, 1, 0, 1, 2]]
    """
    owner = np.repeat(np.arange(len(counts)), counts)
    step = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, step
