"""Sentiment of free-text comments (survey reasons, tickets, reviews) with VADER.

VADER (Hutto & Gilbert, ICWSM 2014) is a lexicon-and-rules scorer: no training, no model weights,
fast enough for every comment in a workspace, and validated against human ratings (see
docs/metrics/voice-of-customer.md, where the paper's correlations are reproduced).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

# The VADER authors' recommended cut-offs on the compound score.
POS_THRESHOLD = 0.05
NEG_THRESHOLD = -0.05

Label = str  # 'positive' | 'neutral' | 'negative'


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    # One instance per process: building it parses the lexicon and emoji files.
    return SentimentIntensityAnalyzer()


def _is_missing(text: object) -> bool:
    # None, NaN from a dataframe, or blank text carry no sentiment: NaN, never a fake 0.0 "neutral".
    return not isinstance(text, str) or not text.strip()


@dataclass(frozen=True)
class SentimentScores:
    """VADER scores per text, aligned with the input; NaN everywhere for a missing text."""

    compound: np.ndarray  # -1..1, normalised sum of valences
    pos: np.ndarray  # proportions of the text that are positive / neutral / negative (sum to 1)
    neu: np.ndarray
    neg: np.ndarray

    def __len__(self) -> int:
        return len(self.compound)

    @property
    def missing(self) -> np.ndarray:
        return np.isnan(self.compound)

    @property
    def n_missing(self) -> int:
        return int(self.missing.sum())

    def labels(self, pos_threshold: float = POS_THRESHOLD, neg_threshold: float = NEG_THRESHOLD) -> list[Label | None]:
        return [label(c, pos_threshold, neg_threshold) for c in self.compound]

    def to_dict(self) -> dict:
        """Column-wise, JSON-ready (NaN becomes null)."""
        def col(a: np.ndarray) -> list[float | None]:
            return [None if math.isnan(x) else round(float(x), 4) for x in a]
        return {"compound": col(self.compound), "pos": col(self.pos), "neu": col(self.neu), "neg": col(self.neg),
                "labels": self.labels(), "n": len(self), "n_missing": self.n_missing}


_MEMO: dict[str, tuple[float, float, float, float]] = {}
_MEMO_MAX = 200_000  # texts; VADER is pure, and one map scores the same comments for friction, themes and risk


def score_texts(texts: Iterable[str | None]) -> SentimentScores:
    """Score every text with one shared analyzer; None / blank texts are NaN and counted as missing.

    Scores are remembered per text (bounded): VADER is a pure function of the text, and one journey map
    scores the same comments three times (friction, themes, churn-risk features)."""
    analyzer = _analyzer()
    rows: list[tuple[float, float, float, float]] = []
    for text in texts:
        if _is_missing(text):
            rows.append((math.nan, math.nan, math.nan, math.nan))
            continue
        row = _MEMO.get(text)
        if row is None:
            s = analyzer.polarity_scores(text)
            row = (s["compound"], s["pos"], s["neu"], s["neg"])
            if len(_MEMO) >= _MEMO_MAX:
                _MEMO.clear()
            _MEMO[text] = row
        rows.append(row)
    arr = np.array(rows, dtype=float).reshape(-1, 4)
    return SentimentScores(compound=arr[:, 0], pos=arr[:, 1], neu=arr[:, 2], neg=arr[:, 3])


def label(compound: float, pos_threshold: float = POS_THRESHOLD, neg_threshold: float = NEG_THRESHOLD) -> Label | None:
    """'positive' at or above pos_threshold, 'negative' at or below neg_threshold, else 'neutral'; None for NaN."""
    if neg_threshold > pos_threshold:
        raise ValueError(f"neg_threshold {neg_threshold} must not exceed pos_threshold {pos_threshold}")
    if compound is None or math.isnan(compound):
        return None
    if compound >= pos_threshold:
        return "positive"
    if compound <= neg_threshold:
        return "negative"
    return "neutral"
