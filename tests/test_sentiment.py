"""VADER sentiment: thresholds, missing texts, and agreement with human ratings on real data."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr, spearmanr

from journeymap.insights.voice import sentiment
from journeymap.insights.voice.sentiment import label, score_texts

# Table 4 of Hutto & Gilbert (2014): Pearson r of VADER's compound score vs the mean of 20 human raters.
PAPER_R = {"tweets": 0.881, "amazonReviewSnippets": 0.565, "nytEditorialSnippets": 0.492, "movieReviewSnippets": 0.451}


def read_ground_truth(path: Path) -> tuple[np.ndarray, list[str]]:
    """id <TAB> mean rating (-4..4) <TAB> text. All four files decode as UTF-8 (CRLF line ends)."""
    ratings, texts = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            _, rating, text = line.split("\t", 2)
            ratings.append(float(rating))
            texts.append(text)
    return np.array(ratings), texts


def test_label_uses_vader_thresholds():
    assert label(0.05) == "positive" and label(0.0499) == "neutral"
    assert label(-0.05) == "negative" and label(-0.0499) == "neutral"
    assert label(0.3, pos_threshold=0.5) == "neutral" and label(-0.3, neg_threshold=-0.2) == "negative"
    assert label(math.nan) is None
    with pytest.raises(ValueError):
        label(0.0, pos_threshold=-0.1, neg_threshold=0.1)


def test_known_vader_examples():
    # From the VADER README; pins the library's behaviour, not ours.
    s = score_texts(["VADER is smart, handsome, and funny.", "A really bad, horrible book.", "The book was good."])
    assert s.compound.tolist() == [0.8316, -0.8211, 0.4404]
    assert s.labels() == ["positive", "negative", "positive"]


def test_missing_texts_are_nan_and_counted():
    s = score_texts([None, "", "   ", "Great service", float("nan")])  # NaN: an empty cell of a dataframe
    assert len(s) == 5 and s.n_missing == 4
    assert s.missing.tolist() == [True, True, True, False, True]
    assert s.labels() == [None, None, None, "positive", None]
    assert s.to_dict()["compound"][0] is None
    empty = score_texts([])
    assert len(empty) == 0 and empty.n_missing == 0


def test_one_analyzer_is_built(monkeypatch):
    built = []
    real = sentiment.SentimentIntensityAnalyzer

    def counting():
        built.append(1)
        return real()

    sentiment._analyzer.cache_clear()
    monkeypatch.setattr(sentiment, "SentimentIntensityAnalyzer", counting)
    try:
        score_texts(["good"] * 3)
        score_texts(["bad"])
        assert len(built) == 1
    finally:
        sentiment._analyzer.cache_clear()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=60), st.sampled_from(["love it", "awful", "slow :(", "ok"]))))
def test_scores_properties(texts):
    s = score_texts(texts)
    assert len(s) == len(texts)
    blank = [t is None or not t.strip() for t in texts]
    assert s.missing.tolist() == blank
    ok = ~s.missing
    assert np.all(np.abs(s.compound[ok]) <= 1)
    assert np.allclose((s.pos + s.neu + s.neg)[ok & (s.pos + s.neu + s.neg > 0)], 1, atol=0.01)
    for c, lab in zip(s.compound, s.labels()):
        assert lab == (None if math.isnan(c) else "positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral")


@pytest.mark.parametrize("name", list(PAPER_R))
def test_reproduces_vader_paper_correlations(shared_data, name):
    path = shared_data / "vader" / f"{name}_GroundTruth.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    human, texts = read_ground_truth(path)
    s = score_texts(texts)
    assert s.n_missing == 0
    r = pearsonr(s.compound, human).statistic
    # 2014 code and lexicon differ slightly from vaderSentiment 3.3.2 (measured: .872/.590/.503/.427).
    assert abs(r - PAPER_R[name]) <= 0.03, f"{name}: r={r:.3f}, paper {PAPER_R[name]}"


def _nps_rows(shared_eval) -> list[dict]:
    path = shared_eval / "nps_verbatims_textsummary" / "text_data_verbatim.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with path.open(encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f) if r["NPS_SCORE"]]  # 32 rows carry no score


def test_nps_sentiment_tracks_score(shared_eval):
    rows = _nps_rows(shared_eval)
    s = score_texts(r["text"] for r in rows)
    rho = spearmanr(s.compound, [int(r["NPS_SCORE"]) for r in rows]).statistic
    # Measured 0.606 on 2,353 answers (standard error ~0.015): 0.50 leaves room for library updates.
    assert rho >= 0.50
    mean = {g: s.compound[np.array([r["NPS_RATING"] == g for r in rows])].mean() for g in ("Detractor", "Passive", "Promoter")}
    # Measured -0.21 < 0.15 < 0.42.
    assert mean["Detractor"] < 0 < mean["Passive"] < mean["Promoter"]


def test_alexa_sentiment_tracks_stars(shared_eval):
    path = shared_eval / "amazon_alexa_reviews" / "amazon_alexa.tsv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with path.open(encoding="utf-8-sig", newline="") as f:  # the file starts with a BOM
        rows = list(csv.DictReader(f, delimiter="\t"))
    s = score_texts(r["verified_reviews"] for r in rows)
    assert s.n_missing == 79  # reviews that are only blank
    ok = ~s.missing
    stars = np.array([int(r["rating"]) for r in rows])
    rho = spearmanr(s.compound[ok], stars[ok]).statistic
    # Measured 0.335 on 3,071 reviews (72% are 5 stars, which caps rho): 0.25 is ~5 standard errors below.
    assert rho >= 0.25
    low, mid, high = (s.compound[ok & np.isin(stars, g)].mean() for g in ([1, 2], [3], [4, 5]))
    assert low < mid < high


def test_remembered_scores_equal_the_analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    texts = ["I love it", "terrible support, never again", "ok", "I love it", None, "  "]
    sentiment._MEMO.clear()
    first = sentiment.score_texts(texts)
    second = sentiment.score_texts(texts)  # from memory
    fresh = SentimentIntensityAnalyzer()
    for i, t in enumerate(texts):
        if t is None or not t.strip():
            assert math.isnan(second.compound[i])
        else:
            assert second.compound[i] == first.compound[i] == fresh.polarity_scores(t)["compound"]
            assert second.neg[i] == fresh.polarity_scores(t)["neg"]
    assert len(sentiment._MEMO) == 3
