"""Connected components of the identifier graph: a union-find vectorised with numpy.

Identifiers are numbered so that a smaller number is a more trusted identifier. Every union hooks the
larger root under the smaller one, so when the loop ends each component's root is its most trusted
identifier, which is what names the person.
"""

from __future__ import annotations

import numpy as np


def components(count: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The root (smallest member) of each node's component, given undirected links left[i]-right[i].

    >>> components(5, np.array([3, 1]), np.array([1, 4])).tolist()
    [0, 1, 2, 1, 1]
    """
    parent = np.arange(count, dtype=np.int64)
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    while left.size:
        # Hook: every root that a link crosses points at the smallest root across it. Parents only
        # ever point downwards, so no cycle can form.
        lo = np.minimum(left, right)
        hi = np.maximum(left, right)
        np.minimum.at(parent, hi, lo)
        # Compress: pointer jumping until every node points straight at its root.
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        # Links now inside one component are done; the rest go round again, between roots.
        left, right = parent[left], parent[right]
        crossing = left != right
        left, right = left[crossing], right[crossing]
    return parent
