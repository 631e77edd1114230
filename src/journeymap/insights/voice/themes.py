"""Themes in free-text comments: TF-IDF over unigrams and bigrams, factorised by NMF.

Each theme is a column of W (document x theme) and a row of H (theme x term). A document belongs to
the theme with its largest weight; a theme is labelled by its heaviest terms. NMF is seeded
(`init='nndsvda'`, `random_state=seed`), so the same texts and seed give the same themes.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

# Words that are frequent in any customer comment but make meaningless labels ("really / just").
FILLER_WORDS = frozenset("""
    really just get gets got getting go goes going went gone make makes made making know think thought
    thing things way lot lots bit also still even ever yet well much many one two would could should will
    can may might us say said says want wanted need needed use used let lets like able told day days
    time times recommend recommended rate rating score reason give gave far overall ok okay yes
    im ive id ill dont didnt doesnt cant wont isnt wasnt arent werent havent hasnt hadnt couldnt wouldnt
    shouldnt thats theres whats youre theyre weve
    i'm i've i'd i'll don't didn't doesn't can't won't isn't wasn't aren't weren't haven't hasn't hadn't
    couldn't wouldn't shouldn't that's there's what's you're they're we've it's let's
""".split())
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | FILLER_WORDS

# Words of 2+ letters, allowing inner hyphens and apostrophes ("wi-fi", "didn't"); numbers never make a theme.
TOKEN_PATTERN = r"(?u)\b[^\W\d_](?:[^\W\d_]|['-][^\W\d_])+\b"

K_CANDIDATES = range(3, 11)  # tried when n_themes is None
LABEL_TERMS = 5  # how deep into a theme's top terms a bigram may sit and still become the label
QUOTE_CHARS = 200


@dataclass(frozen=True)
class Theme:
    index: int
    label: str
    terms: list[tuple[str, float]]  # heaviest first, weights from H scaled so the top term is 1.0
    n_docs: int  # documents assigned to this theme
    share: float  # n_docs / all documents (empty ones included)
    quotes: list[str]  # assigned documents with the highest weight, deduplicated, trimmed

    def to_dict(self) -> dict:
        return {"index": self.index, "label": self.label, "terms": [{"term": t, "weight": round(w, 4)} for t, w in self.terms],
                "n_docs": self.n_docs, "share": round(self.share, 4), "quotes": list(self.quotes)}


@dataclass(frozen=True)
class ThemeResult:
    """Themes (largest first) and, per input document, its theme index (-1: none) and weight."""

    themes: list[Theme]
    assignment: np.ndarray  # int, -1 for empty texts and rows of W that are all zero
    weight: np.ndarray  # the assigned theme's share of the document's W row, 0..1 (0 when unassigned)
    n_docs: int
    k_scores: dict[int, float] = field(default_factory=dict)  # coherence per k tried, when k was chosen

    @property
    def labels(self) -> list[str]:
        return [t.label for t in self.themes]

    @property
    def n_unassigned(self) -> int:
        return int((self.assignment < 0).sum())

    def to_dict(self) -> dict:
        return {"n_docs": self.n_docs, "n_themes": len(self.themes), "n_unassigned": self.n_unassigned,
                "themes": [t.to_dict() for t in self.themes],
                "assignment": [int(a) for a in self.assignment], "weight": [round(float(w), 4) for w in self.weight],
                "k_scores": {str(k): round(v, 4) for k, v in self.k_scores.items()}}


def _analyzer(stop_words: frozenset[str]) -> Callable[[str], list[str]]:
    """Lower-cased unigrams and bigrams without stop words, dropping bigrams of one word twice ("broadband broadband")."""
    base = TfidfVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN, ngram_range=(1, 2), stop_words=sorted(stop_words))
    analyze = base.build_analyzer()

    def terms(doc: str) -> list[str]:
        out = []
        for term in analyze(doc.replace("\u2019", "'")):  # curly apostrophes, so "didn’t" meets the stop word
            a, _, b = term.partition(" ")
            if a != b:
                out.append(term)
        return out
    return terms


def _empty(n_docs: int) -> ThemeResult:
    return ThemeResult(themes=[], assignment=np.full(n_docs, -1, dtype=int), weight=np.zeros(n_docs), n_docs=n_docs)


def _fit(x, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    nmf = NMF(n_components=k, init="nndsvda", random_state=seed, max_iter=400, tol=1e-4)
    with warnings.catch_warnings():
        # Not converging within max_iter happens on tiny or degenerate input; the factors are still usable.
        warnings.simplefilter("ignore", ConvergenceWarning)
        # An exact fit makes sklearn's reconstruction error sqrt(-1e-17); the factors are fine.
        warnings.filterwarnings("ignore", "invalid value encountered in sqrt", RuntimeWarning)
        w = nmf.fit_transform(x)
    return w, nmf.components_


def _coherence(h: np.ndarray, present: np.ndarray, top: int = 10) -> float:
    """Mean UMass coherence of each theme's top terms: do they occur in the same documents?

    UMass(w_i, w_j) = log((D(w_i, w_j) + 1) / D(w_j)) over pairs with w_j ranked above w_i.
    Cheap (document co-occurrence counts only) and deterministic.
    """
    df = np.asarray(present.sum(axis=0)).ravel()
    scores = []
    for row in h:
        idx = np.argsort(-row, kind="stable")[:top]
        co = (present[:, idx].T @ present[:, idx]).toarray()
        pairs = [math.log((co[i, j] + 1) / df[idx[j]]) for i in range(1, len(idx)) for j in range(i)]
        scores.append(float(np.mean(pairs)) if pairs else 0.0)
    return float(np.mean(scores))


def _label(terms: Sequence[str], taken: set[str]) -> str:
    head = list(terms[:LABEL_TERMS])
    bigram = next((t for t in head if " " in t), None)
    if bigram is not None:
        label = bigram
        rest = [t for t in terms if " " not in t and t not in bigram.split()]
    else:
        label = " / ".join(terms[:2])
        rest = list(terms[2:])
    # Two themes sharing a label would be indistinguishable in a report: append the next distinct term.
    for extra in rest:
        if label not in taken:
            break
        label = f"{label} / {extra}"
    return label


def _trim(text: str, limit: int = QUOTE_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,.;:") + "…"


def _quotes(texts: Sequence[str], column: np.ndarray, members: np.ndarray, n: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for i in sorted(members, key=lambda i: (-column[i], i)):
        key = re.sub(r"\W+", " ", texts[i].lower()).strip()
        if key in seen:
            continue
        seen.add(key)
        out.append(_trim(texts[i]))
        if len(out) == n:
            break
    return out


_MEMO: dict[tuple, ThemeResult] = {}
_MEMO_MAX = 4  # results; one journey map fits the same comments twice (themes per stage, and friction)


def find_themes(
    texts: Iterable[str | None],
    n_themes: int | None = None,
    seed: int = 0,
    min_df: int | float = 2,
    max_df: float = 0.9,
    max_features: int | None = 5000,
    stop_words: Iterable[str] | None = None,
    n_terms: int = 10,
    n_quotes: int = 3,
) -> ThemeResult:
    """Find themes in texts. With n_themes=None, k in 3..10 with the best mean UMass coherence is used.

    Never fails on small input: k is capped by the number of usable documents and terms, and input with
    no usable terms (empty, all stop words, all numbers) gives an empty result.
    `stop_words` replaces the default list (English stop words plus FILLER_WORDS).
    The fit is deterministic, so the last few results are remembered (keyed by a digest of the texts and
    every argument) and a copy is returned.
    """
    docs = [t if isinstance(t, str) else "" for t in texts]
    digest = hashlib.sha256("\x1f".join(docs).encode("utf-8", "surrogatepass")).hexdigest()
    key = (digest, len(docs), n_themes, seed, min_df, max_df, max_features,
           None if stop_words is None else tuple(sorted(stop_words)), n_terms, n_quotes)
    if key not in _MEMO:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = _find_themes(docs, n_themes, seed, min_df, max_df, max_features, stop_words, n_terms, n_quotes)
    return copy.deepcopy(_MEMO[key])


def _find_themes(docs: list[str], n_themes, seed, min_df, max_df, max_features, stop_words, n_terms,
                 n_quotes) -> ThemeResult:
    n_docs = len(docs)
    usable = [i for i, t in enumerate(docs) if t.strip()]
    if not usable or (n_themes is not None and n_themes < 1):
        return _empty(n_docs)
    n_usable = len(usable)
    # An absolute min_df above the corpus size would prune every term of a tiny input.
    eff_min_df = min(min_df, n_usable) if isinstance(min_df, int) else min_df
    analyzer = _analyzer(STOP_WORDS if stop_words is None else frozenset(stop_words))
    # max_df drops words in nearly every comment; when that is every word (five copies of "great price"),
    # or when it falls below min_df on a tiny input, fit again without it.
    for df_cap in dict.fromkeys([max_df, 1.0]):
        vec = TfidfVectorizer(analyzer=analyzer, min_df=eff_min_df, max_df=df_cap, max_features=max_features,
                              sublinear_tf=True, dtype=np.float64)
        try:
            x = vec.fit_transform([docs[i] for i in usable])
            break
        except ValueError:  # no terms left; with max_df=1.0 too: nothing but stop words, numbers or punctuation
            continue
    else:
        return _empty(n_docs)
    vocab = vec.get_feature_names_out()
    # More themes than distinct non-empty rows cannot be told apart: cap k there (and at the vocabulary size).
    x = x.tocsr()
    distinct = {(x.indices[a:b].tobytes(), x.data[a:b].tobytes()) for a, b in zip(x.indptr[:-1], x.indptr[1:]) if b > a}
    k_max = min(len(distinct), len(vocab))
    if k_max == 0:
        return _empty(n_docs)

    k_scores: dict[int, float] = {}
    if n_themes is None:
        candidates = [k for k in K_CANDIDATES if k <= k_max] or [k_max]
        present = (x > 0).astype(np.float64).tocsc()
        fits = {}
        for k in candidates:
            fits[k] = _fit(x, k, seed)
            k_scores[k] = _coherence(fits[k][1], present)
        # Highest coherence wins; ties go to the smaller k (fewer, broader themes).
        k = max(candidates, key=lambda c: (round(k_scores[c], 9), -c))
        w, h = fits[k]
    else:
        k = min(n_themes, k_max)
        w, h = _fit(x, k, seed)

    # Back to input order: empty texts and all-zero rows stay unassigned.
    full_w = np.zeros((n_docs, k))
    full_w[usable] = w
    row_sum = full_w.sum(axis=1)
    raw_assign = np.where(row_sum > 0, full_w.argmax(axis=1), -1)
    # Largest theme first; ties by original component index, so the order is deterministic.
    counts = np.bincount(raw_assign[raw_assign >= 0], minlength=k)
    order = sorted(range(k), key=lambda t: (-counts[t], t))
    remap = np.full(k, -1)
    remap[order] = np.arange(k)
    assignment = np.where(raw_assign >= 0, remap[np.maximum(raw_assign, 0)], -1)
    weight = np.where(row_sum > 0, full_w.max(axis=1) / np.where(row_sum > 0, row_sum, 1.0), 0.0)

    themes: list[Theme] = []
    taken: set[str] = set()
    for new, old in enumerate(order):
        if counts[old] == 0:  # sorted last, so kept indices stay 0..n-1; a theme no document chose says nothing
            continue
        row = h[old]
        top = [i for i in np.argsort(-row, kind="stable")[:n_terms] if row[i] > 0]
        scale = row[top[0]] if top else 1.0
        terms = [(str(vocab[i]), float(row[i] / scale)) for i in top]
        label = _label([t for t, _ in terms], taken) if terms else f"theme {new + 1}"
        if label in taken:  # ran out of distinct terms (tiny input)
            label = f"{label} ({new + 1})"
        taken.add(label)
        members = np.flatnonzero(assignment == new)
        themes.append(Theme(index=new, label=label, terms=terms, n_docs=int(counts[old]), share=float(counts[old] / n_docs),
                            quotes=_quotes(docs, full_w[:, old], members, n_quotes)))
    return ThemeResult(themes=themes, assignment=assignment.astype(int), weight=weight, n_docs=n_docs, k_scores=k_scores)
