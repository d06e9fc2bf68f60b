"""Properties of the evaluation statistics over generated inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from cueprobe.metrics import uar_score
from cueprobe.stats import bootstrap_uar
from cueprobe.stats import holm
from cueprobe.stats import mcnemar_exact

LABELS = ["angry", "happy", "neutral", "sad"]

answers = st.sampled_from([*LABELS, "", "calm"])


@st.composite
def labelled(draw, min_size=1, max_size=80):
    y_true = draw(st.lists(st.sampled_from(LABELS), min_size=min_size, max_size=max_size))
    y_pred = draw(st.lists(answers, min_size=len(y_true), max_size=len(y_true)))
    return np.array(y_true, dtype=object), np.array(y_pred, dtype=object)


@given(labelled(), st.randoms(use_true_random=False))
def test_uar_in_unit_interval_order_free_and_one_when_perfect(data, rnd):
    y_true, y_pred = data
    labels = sorted(set(y_true))  # only present classes: no absent-class warning
    uar = uar_score(y_true, y_pred, labels=labels)
    assert 0.0 <= uar <= 1.0
    perm = list(range(len(y_true)))
    rnd.shuffle(perm)
    assert np.isclose(uar_score(y_true[perm], y_pred[perm], labels=labels), uar, atol=1e-12)
    assert uar_score(y_true, y_true, labels=labels) == 1.0


@st.composite
def clustered(draw):
    """4-10 speakers, each with every class 1-4 times; accuracy per speaker varies."""
    n_speakers = draw(st.integers(4, 10))
    y_true, y_pred, speakers = [], [], []
    for s in range(n_speakers):
        per_class = draw(st.integers(1, 4))
        for label in LABELS:
            for _ in range(per_class):
                y_true.append(label)
                y_pred.append(draw(st.sampled_from([label, label, "neutral", ""])))
                speakers.append(f"s{s}")
    return np.array(y_true), np.array(y_pred), np.array(speakers)


@settings(max_examples=40)
@given(clustered(), st.integers(0, 2**32 - 1))
def test_ci_contains_estimate_and_seed_reproduces(data, seed):
    y_true, y_pred, speakers = data
    kw = dict(labels=LABELS, n_resamples=400, confidence_level=0.95)
    res = bootstrap_uar(y_true, y_pred, speakers, **kw, rng=np.random.default_rng(seed))
    assert res.ci_low - 1e-12 <= res.estimate <= res.ci_high + 1e-12
    again = bootstrap_uar(y_true, y_pred, speakers, **kw, rng=np.random.default_rng(seed))
    assert again == res
    assert res.n_degenerate == 0  # every speaker holds every class


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_holm_is_at_least_raw_at_most_one_and_order_preserving(p):
    p = np.array(p)
    adj = holm(p)
    assert (adj >= p - 1e-15).all() and (adj <= 1).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(adj[order]) >= -1e-15).all()


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=200))
def test_mcnemar_is_symmetric_in_its_systems(pairs):
    a = np.array([x for x, _ in pairs])
    b = np.array([y for _, y in pairs])
    ab, ba = mcnemar_exact(a, b), mcnemar_exact(b, a)
    assert (ab.b, ab.c) == (ba.c, ba.b)
    assert ab.pvalue == ba.pvalue
    assert 0 < ab.pvalue <= 1
