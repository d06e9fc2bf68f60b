"""Properties of the token interventions (hypothesis, deterministic profile in CI)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from cueprobe.define import ORDINAL_CONCEPTS
from cueprobe.define import Concept
from cueprobe.interventions import CONCEPT_COLUMNS
from cueprobe.interventions import build_condition
from cueprobe.interventions import vocabulary

VQ_MAP = {
    "BREATHY": "PRESSED",
    "PRESSED": "BREATHY",
    "MODAL": "ROUGH",
    "ROUGH": "MODAL",
    "CREAKY": "BREATHY",
    "UNVOICED": "UNVOICED",
}


@st.composite
def token_tables(draw):
    n_bins = draw(st.sampled_from([3, 5, 7]))
    n = draw(st.integers(min_value=1, max_value=40))
    cols = {"utt_id": [f"u{i:03d}" for i in range(n)]}
    for concept in CONCEPT_COLUMNS:
        vocab = vocabulary(concept, n_bins)
        cols[concept] = draw(st.lists(st.sampled_from(vocab), min_size=n, max_size=n))
    groups = draw(st.lists(st.sampled_from(["train", "test"]), min_size=n, max_size=n))
    return pd.DataFrame(cols), n_bins, groups


def _build(name, tokens, n_bins, groups, seed=0):
    return build_condition(
        name,
        tokens,
        n_bins=n_bins,
        groups=groups,
        voice_quality_map=VQ_MAP,
        template="{concept}={value}",
        separator="; ",
        rng=np.random.default_rng(seed),
    )


@given(token_tables())
def test_corrupt_p0_equals_aligned(table):
    tokens, n_bins, groups = table
    pd.testing.assert_frame_equal(
        _build("corrupt_p0_s3", tokens, n_bins, groups), _build("aligned", tokens, n_bins, groups)
    )


@given(token_tables())
def test_conflict_twice_is_aligned_for_ordinal_concepts(table):
    tokens, n_bins, groups = table
    once = _build("conflict", tokens, n_bins, groups)
    twice = _build("conflict", once, n_bins, groups)
    cols = [c.value for c in ORDINAL_CONCEPTS]
    pd.testing.assert_frame_equal(twice[cols], tokens[cols])
    # MID stays MID, and every other ordinal value changes
    for c in cols:
        is_mid = tokens[c] == "MID"
        assert (once.loc[is_mid, c] == "MID").all()
        assert (once.loc[~is_mid, c] != tokens.loc[~is_mid, c]).all()


@given(token_tables(), st.integers(0, 10))
def test_shuffle_keeps_the_multiset_within_each_group(table, seed):
    tokens, n_bins, groups = table
    shuffled = _build(f"shuffle_s{seed}", tokens, n_bins, groups, seed=seed)
    aligned = _build("aligned", tokens, n_bins, groups)
    for g in set(groups):
        mask = np.array(groups) == g
        assert sorted(shuffled.loc[mask, "token_string"]) == sorted(
            aligned.loc[mask, "token_string"]
        )
    assert shuffled["utt_id"].tolist() == tokens["utt_id"].tolist()


@given(token_tables(), st.sampled_from([0.25, 0.5, 1.0]))
def test_same_seed_same_condition(table, p):
    tokens, n_bins, groups = table
    name = f"corrupt_p{round(100 * p)}_s1"
    a = _build(name, tokens, n_bins, groups, seed=11)
    b = _build(name, tokens, n_bins, groups, seed=11)
    pd.testing.assert_frame_equal(a, b)


@given(token_tables())
def test_corruptions_are_nested_in_p(table):
    tokens, n_bins, groups = table
    changed = []
    for pct in (25, 50, 75, 100):
        out = _build(f"corrupt_p{pct}_s0", tokens, n_bins, groups, seed=5)
        changed.append((out[list(CONCEPT_COLUMNS)] != tokens[list(CONCEPT_COLUMNS)]).to_numpy())
    for lower, higher in zip(changed, changed[1:], strict=False):
        assert not (lower & ~higher).any()


def test_other_seed_other_condition():
    rng = np.random.default_rng(0)
    n = 200
    tokens = pd.DataFrame({"utt_id": [f"u{i}" for i in range(n)]})
    for c in CONCEPT_COLUMNS:
        tokens[c] = rng.choice(vocabulary(c, 5), size=n)
    groups = ["test"] * n
    a = _build("shuffle_s0", tokens, 5, groups, seed=1)
    b = _build("shuffle_s1", tokens, 5, groups, seed=2)
    assert (a["token_string"] != b["token_string"]).mean() > 0.5
    c = _build("corrupt_p50_s0", tokens, 5, groups, seed=1)
    d = _build("corrupt_p50_s1", tokens, 5, groups, seed=2)
    assert (c["token_string"] != d["token_string"]).mean() > 0.5
    # full corruption draws uniformly: every value of the vocabulary appears
    full = _build("corrupt_p100_s0", tokens, 5, groups, seed=3)
    assert set(full[Concept.ENERGY]) == set(vocabulary("ENERGY", 5))
