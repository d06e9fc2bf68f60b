"""Concept tokens: recover the demo generator, bin evenly, per gender, flag instead of drop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from cueprobe import io
from cueprobe.cli import main
from cueprobe.corpora import build_manifest
from cueprobe.corpora.demo import make_demo_iemocap
from cueprobe.define import EGEMAPS_LLDS
from cueprobe.define import ORDINAL_CONCEPTS
from cueprobe.define import Concept
from cueprobe.define import level_names
from cueprobe.features import extract_features
from cueprobe.figures import figure_bytes
from cueprobe.figures.token_distribution import PAGE_WIDTH_IN
from cueprobe.figures.token_distribution import plot_token_distribution
from cueprobe.figures.token_distribution import token_frequencies
from cueprobe.figures.token_distribution import vocabularies
from cueprobe.tokens import ANALYSED
from cueprobe.tokens import DegenerateDescriptorWarning
from cueprobe.tokens import SparseGroupWarning
from cueprobe.tokens import TokenEdges
from cueprobe.tokens import VoiceQualityRule
from cueprobe.tokens import assign_tokens
from cueprobe.tokens import bin_scores
from cueprobe.tokens import fit_token_edges
from cueprobe.tokens import measured_tokens
from cueprobe.tokens import serialise_tokens
from cueprobe.tokens import tokenize

OPTS = dict(voice_quality=VoiceQualityRule(), template="{concept}={value}", separator="; ")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """~100 generated IEMOCAP-layout utterances with their features and generating params."""
    root = tmp_path_factory.mktemp("demo")
    params = make_demo_iemocap(root, n_per_speaker=8, seed=5)
    manifest, _ = build_manifest("iemocap", root)
    features = extract_features(manifest, min_duration_s=0.06, n_workers=2)
    return manifest, features, params


@pytest.fixture(scope="module")
def tokens(demo):
    manifest, features, _ = demo
    return tokenize(
        features, manifest, n_bins=5, fit_on="all", gender_specific=["PITCH", "FORMANTS"], **OPTS
    )


def test_tokens_recover_generating_parameters(demo, tokens):
    _, _, params = demo
    m = tokens[0].merge(params, on="utt_id")
    # measured with the current synthesiser: F0 0.999, level 0.95, tilt ~0.5
    assert spearmanr(m["f0_hz"], m["score_PITCH"]).statistic >= 0.9
    assert spearmanr(m["level_db"], m["score_ENERGY"]).statistic >= 0.9
    assert spearmanr(m["tilt"], m["score_BRIGHTNESS"]).statistic >= 0.35


def test_bins_hold_near_equal_counts(tokens):
    tok, edges = tokens
    for concept in (Concept.ENERGY, Concept.DYNAMICS, Concept.BRIGHTNESS):
        counts = tok[concept.value].value_counts().reindex(edges.levels(concept), fill_value=0)
        assert counts.max() - counts.min() <= 2, counts


def test_gender_specific_edges_differ_and_spread_both_genders(demo, tokens):
    manifest, _, _ = demo
    tok, edges = tokens
    for concept in ("PITCH", "FORMANTS"):
        assert set(edges.edges[concept]) == {"all", "F", "M"}
        assert not np.allclose(edges.edges[concept]["F"], edges.edges[concept]["M"])
    assert set(edges.edges["ENERGY"]) == {"all"}
    m = tok.merge(manifest[["utt_id", "gender"]], on="utt_id")
    table = pd.crosstab(m["gender"], m["PITCH"]).reindex(
        columns=edges.levels("PITCH"), fill_value=0
    )
    assert (table.loc[["F", "M"]] > 0).all().all(), table
    # pooled edges would put almost every man in the lowest two bins
    pooled = bin_scores(m.loc[m["gender"] == "M", "score_PITCH"], edges.edges["PITCH"]["all"])
    assert (pooled <= 1).mean() > 0.8


def test_edges_json_lets_a_reader_rebin_by_hand(demo, tokens):
    _, features, _ = demo
    tok, edges = tokens
    import json

    d = json.loads(json.dumps(edges.to_dict()))
    back = TokenEdges.from_dict(d)
    assert back == edges
    f = features.set_index("utt_id").loc[tok["utt_id"]]
    z = (f["Loudness_sma3"] - d["centre"]["Loudness_sma3"]) / d["scale"]["Loudness_sma3"]
    by_hand = [
        d["levels"]["ENERGY"][int(np.sum(np.array(d["edges"]["ENERGY"]["all"]) <= v))] for v in z
    ]
    assert by_hand == tok["ENERGY"].tolist()


def test_token_string_follows_template(tokens):
    tok, _ = tokens
    first = tok.iloc[0]
    expect = "; ".join(f"{c.value}={first[c.value]}" for c in Concept)
    assert first["token_string"] == expect
    s = serialise_tokens(tok.head(2), template="<{concept}:{value}>", separator="|")
    assert s.iloc[0].startswith(f"<ENERGY:{first['ENERGY']}>|<PITCH:")
    # without {value} every condition would carry the same block (interventions void)
    for bad in ("{concept}", "{value}", "{concept}={value.real}"):
        with pytest.raises(ValueError, match="token template"):
            serialise_tokens(tok.head(2), template=bad, separator="|")
    # a format spec or conversion formatted fine, but the reference model reads the block
    # back by the plain fields: every token condition scored as audio-only
    for bad in ("{concept:>12}={value}", "{concept}={value!r}", "{concept}={value}{x}"):
        with pytest.raises(ValueError, match=r"may use only plain \{concept\} and \{value\}"):
            serialise_tokens(tok.head(2), template=bad, separator="|")


def test_bad_files_still_get_tokens_and_a_flag(demo):
    manifest, features, _ = demo
    f = features.copy()
    f.loc[0, list(EGEMAPS_LLDS)] = np.nan
    f.loc[0, ["status", "voiced_ratio", "n_frames"]] = ["too_short", 0.0, 0]
    f.loc[1, ["status", "voiced_ratio"]] = ["unreadable", np.nan]
    f.loc[1, list(EGEMAPS_LLDS)] = np.nan
    voiced_only = [
        c for c in EGEMAPS_LLDS if c.endswith("nz") or c.startswith(("alpha", "hammar", "slope"))
    ]
    f.loc[2, voiced_only] = np.nan
    f.loc[2, "voiced_ratio"] = 0.0
    f.loc[3, "F1frequency_sma3nz"] = np.nan
    tok, _ = tokenize(f, manifest, n_bins=5, fit_on="all", gender_specific=["PITCH"], **OPTS)
    assert len(tok) == len(f) and tok["utt_id"].tolist() == f["utt_id"].tolist()
    assert tok.loc[:3, "flag"].tolist() == [
        "too_short",
        "unreadable",
        "unvoiced;nan_score:PITCH+BRIGHTNESS+FORMANTS",  # filled in, and said so
        "nan_score:FORMANTS",
    ]
    assert tok.loc[:2, "VOICE_QUALITY"].tolist() == ["UNVOICED"] * 3
    assert tok.loc[0, "PITCH"] == "MID" and tok.loc[3, "FORMANTS"] == "MID"
    assert (tok.loc[4:, "flag"] == "").all()
    io.validate_table(tok, "tokens")


def _vq_edges() -> TokenEdges:
    zeros = {c: 0.0 for c in EGEMAPS_LLDS}
    ones = {c: 1.0 for c in EGEMAPS_LLDS}
    edges = {c.value: {"all": [-1.0, 1.0]} for c in ORDINAL_CONCEPTS}
    return TokenEdges(3, "all", 1, zeros, ones, edges, (), {})


def _vq_features(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    base = dict.fromkeys(EGEMAPS_LLDS, 0.0) | {"voiced_ratio": 0.9, "n_frames": 100, "status": "ok"}
    f = pd.DataFrame([base | r for r in rows])
    f.insert(0, "utt_id", [f"u{i}" for i in range(len(f))])
    m = pd.DataFrame({"utt_id": f["utt_id"], "gender": "F", "split": "train"})
    return f, m


def test_voice_quality_rule_and_order():
    j, s, h = "jitterLocal_sma3nz", "shimmerLocaldB_sma3nz", "HNRdBACF_sma3nz"
    h12, h13, f0 = "logRelF0-H1-H2_sma3nz", "logRelF0-H1-A3_sma3nz", "F0semitoneFrom27.5Hz_sma3nz"
    f, m = _vq_features(
        [
            {j: 2, s: 2},  # ROUGH
            {h: -2, s: 2},  # ROUGH (low HNR and high shimmer)
            {h: -2, h12: 2},  # BREATHY
            {h12: -2, h13: -2},  # PRESSED
            {f0: -2, j: 0.6},  # CREAKY
            {"voiced_ratio": 0.05},  # UNVOICED
            {},  # MODAL
            {h: -2, j: 2, h12: 2},  # ROUGH before BREATHY by default
            {j: 1.5},  # one cue only: MODAL
            # each clause needs all its cues: one alone is MODAL
            {h12: -2},  # PRESSED's h1h2 without h1a3
            {h13: -2},  # PRESSED's h1a3 without h1h2
            {h: -2},  # BREATHY's HNR without h1h2 (nor ROUGH's jitter or shimmer)
            {h12: 2},  # BREATHY's h1h2 without low HNR
            {f0: -2},  # CREAKY's low F0 without jitter
            {j: 0.6},  # CREAKY's jitter without low F0
            {s: 2},  # ROUGH's shimmer alone
        ]
    )
    vq = assign_tokens(f, m, _vq_edges(), **OPTS)["VOICE_QUALITY"].tolist()
    assert vq == [
        "ROUGH",
        "ROUGH",
        "BREATHY",
        "PRESSED",
        "CREAKY",
        "UNVOICED",
        "MODAL",
        "ROUGH",
        "MODAL",
        *["MODAL"] * 7,
    ]
    rule = VoiceQualityRule(order=("BREATHY", "ROUGH"), threshold=1.0)
    opts = OPTS | {"voice_quality": rule}
    assert assign_tokens(f, m, _vq_edges(), **opts)["VOICE_QUALITY"].tolist()[7] == "BREATHY"
    loose = OPTS | {"voice_quality": VoiceQualityRule(threshold=3.0)}
    assert set(assign_tokens(f, m, _vq_edges(), **loose)["VOICE_QUALITY"]) == {"MODAL", "UNVOICED"}
    # an order without UNVOICED: a clip with no voiced frame, or none read, is still
    # UNVOICED (it was "modal voice"); a voiced ratio under the floor is the order's call
    g, n = _vq_features(
        [
            {"voiced_ratio": 0.0},
            {"status": "too_short", "voiced_ratio": np.nan},
            {"voiced_ratio": 0.05},
        ]
    )
    assert assign_tokens(g, n, _vq_edges(), **opts)["VOICE_QUALITY"].tolist() == [
        "UNVOICED",
        "UNVOICED",
        "MODAL",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0.0}, "threshold must be > 0"),
        ({"unvoiced_floor": 1.5}, r"unvoiced_floor must be in \(0, 1\]"),
        ({"unvoiced_floor": 0.0}, r"unvoiced_floor must be in \(0, 1\]"),
        ({"order": ("MODAL",)}, "must not list MODAL"),
        ({"order": ("ROUGH", "ROUGH")}, "lists a value twice"),
    ],
)
def test_voice_quality_rule_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VoiceQualityRule(**kwargs)


def test_validation_errors(demo):
    manifest, features, _ = demo
    fit = dict(n_bins=5, fit_on="all")
    with pytest.raises(ValueError, match="`fit_on` must be 'all' or 'train'"):
        fit_token_edges(features, manifest, n_bins=5, fit_on="dev")
    with pytest.raises(ValueError, match=r"gender_specific lists \['VOICE_QUALITY'\]"):
        fit_token_edges(features, manifest, gender_specific=["VOICE_QUALITY"], **fit)
    with pytest.raises(ValueError, match="1 manifest utt_id.s. without features"):
        fit_token_edges(features.iloc[1:], manifest, **fit)
    with pytest.raises(ValueError, match=r"features table lacks column\(s\) \['status'\]"):
        fit_token_edges(features.drop(columns="status"), manifest, **fit)
    with pytest.raises(ValueError, match=r"manifest lacks column\(s\) \['split'\]"):
        fit_token_edges(features, manifest.drop(columns="split"), **fit)
    with pytest.raises(ValueError, match="no utterance to fit token edges on"):
        fit_token_edges(features.assign(status="silent"), manifest, **fit)
    # features.min_duration_s set above every clip: the message named no config key
    with pytest.raises(
        ValueError, match=r"too_short \d+: too_short is a clip under features\.min_duration_s"
    ):
        fit_token_edges(features.assign(status="too_short"), manifest, **fit)
    with pytest.raises(ValueError, match="`n_bins` must be an integer in \\[2, 7\\]"):
        fit_token_edges(features, manifest, n_bins=1, fit_on="all")
    with pytest.raises(ValueError, match="`n_bins` must be an integer in \\[2, 7\\]"):
        fit_token_edges(features, manifest, n_bins=9, fit_on="all")  # EXTREME2_LOW: no word
    nan_f0 = features.assign(**{"F0semitoneFrom27.5Hz_sma3nz": np.nan})
    with pytest.warns(DegenerateDescriptorWarning, match="no finite value"):
        with pytest.raises(ValueError, match="no finite PITCH score"):
            fit_token_edges(nan_f0, manifest, **fit)
    with pytest.warns(DegenerateDescriptorWarning, match="has zero IQR"):
        fit_token_edges(features.assign(mfcc1_sma3=1.0), manifest, **fit)
    few = manifest.assign(gender=np.where(np.arange(len(manifest)) < 2, "M", "F"))
    with pytest.warns(SparseGroupWarning, match="gender 'M': 2 fitting rows < n_bins=5"):
        edges = fit_token_edges(features, few, gender_specific=["PITCH"], **fit)
    assert set(edges.edges["PITCH"]) == {"all", "F"}
    with pytest.raises(ValueError, match="token template"):
        serialise_tokens(
            pd.DataFrame({c.value: ["X"] for c in Concept}), template="{name}", separator=";"
        )


def test_ties_on_collapsed_edges_take_the_middle_bins(demo):
    """Scores on several equal edges take the middle of the bins those edges span."""
    manifest, features, _ = demo
    flux = "spectralFlux_sma3"  # DYNAMICS = spectral flux alone
    with pytest.warns(DegenerateDescriptorWarning, match="zero IQR"):
        tok, edges = tokenize(
            features.assign(**{flux: 0.5}),
            manifest,
            n_bins=5,
            fit_on="all",
            gender_specific=[],
            **OPTS,
        )
    assert len(set(edges.edges["DYNAMICS"]["all"])) == 1
    assert (tok["DYNAMICS"] == "MID").all()  # not all VERY_DYNAMIC (the highest bin)
    f = features.copy()
    low = f[flux] <= f[flux].quantile(0.5)
    f.loc[low, flux] = f.loc[low, flux].min()  # floored: half the corpus at one value
    tok, edges = tokenize(f, manifest, n_bins=5, fit_on="all", gender_specific=[], **OPTS)
    e = edges.edges["DYNAMICS"]["all"]
    assert e[0] == e[1] < e[2]  # the 20 % and 40 % quantiles collapse
    shares = tok["DYNAMICS"].value_counts(normalize=True)
    # the floored half sits at percentiles 0-50 %: its mid-rank (25 %) is the second bin
    assert shares[level_names(Concept.DYNAMICS, 5)[1]] == pytest.approx(low.mean())
    np.testing.assert_array_equal(bin_scores([1.0, 1.0, 0.0, 2.0], [1.0, 1.0]), [1, 1, 0, 2])


def test_a_gender_binned_with_pooled_edges_is_flagged(demo):
    """fit_on: train with a gender missing from train: its utterances took the other
    gender's edges (an octave apart for PITCH) with a log warning and no row flag."""
    manifest, features, _ = demo
    few = manifest.assign(gender=np.where(np.arange(len(manifest)) < 2, "M", "F"))
    with pytest.warns(SparseGroupWarning):
        tok, _ = tokenize(
            features, few, n_bins=5, fit_on="all", gender_specific=["PITCH", "FORMANTS"], **OPTS
        )
    males = (few["gender"] == "M").to_numpy() & (tok["flag"] != "too_short").to_numpy()
    assert males.any()
    assert tok.loc[males, "flag"].str.contains("pooled_edges:PITCH+FORMANTS", regex=False).all()
    assert not tok.loc[~males, "flag"].str.contains("pooled_edges").any()
    # a gender that is neither F nor M takes the pooled edges too, and says so
    uid = features.loc[features["status"].eq("ok"), "utt_id"].iloc[0]
    unknown = manifest.assign(gender=manifest["gender"].where(manifest["utt_id"] != uid, "unknown"))
    tok, _ = tokenize(features, unknown, n_bins=5, fit_on="all", gender_specific=["PITCH"], **OPTS)
    flagged = tok.loc[tok["flag"].str.contains("pooled_edges:PITCH", regex=False), "utt_id"]
    assert flagged.tolist() == [uid]
    # ... an UNVOICED one too: the flag kept only `unvoiced` (its PITCH is still binned,
    # with the pooled edges, from the F0 of its few voiced frames)
    barely = features.assign(
        voiced_ratio=features["voiced_ratio"].where(features["utt_id"] != uid, 0.05)
    )
    tok, _ = tokenize(barely, unknown, n_bins=5, fit_on="all", gender_specific=["PITCH"], **OPTS)
    row = tok.set_index("utt_id").loc[uid]
    assert row["VOICE_QUALITY"] == "UNVOICED" and row["flag"] == "unvoiced;pooled_edges:PITCH"


def test_the_unvoiced_flag_is_the_unvoiced_token_whatever_the_rule_order(demo):
    """An order without UNVOICED left a barely voiced clip MODAL, flagged `unvoiced`."""
    manifest, features, _ = demo
    ok = features["status"].eq("ok").to_numpy()
    barely = features.assign(voiced_ratio=np.where(ok, 0.05, features["voiced_ratio"]))
    for order in (("UNVOICED", "ROUGH"), ("ROUGH", "CREAKY")):
        opts = OPTS | {"voice_quality": VoiceQualityRule(order=order)}
        tok, _ = tokenize(barely, manifest, n_bins=5, fit_on="all", gender_specific=[], **opts)
        is_unvoiced = tok["VOICE_QUALITY"].eq("UNVOICED")
        first = tok.loc[ok, "flag"].str.split(";").str[0]
        assert (first.eq("unvoiced") == is_unvoiced[ok]).all(), order
    assert not is_unvoiced[ok].any()  # the second order: every barely voiced clip is voiced


def test_a_nan_score_takes_the_middle_a_tie_takes(demo):
    """Even n_bins: a NaN score went to the lower middle, collapsed ties to the upper."""
    manifest, features, _ = demo
    nan = features.assign(spectralFlux_sma3=np.where(np.arange(len(features)) == 0, np.nan, 0.5))
    with pytest.warns(DegenerateDescriptorWarning):
        tok, _ = tokenize(nan, manifest, n_bins=4, fit_on="all", gender_specific=[], **OPTS)
    assert tok["DYNAMICS"].nunique() == 1  # the NaN row and the tied rows alike


def test_gender_specific_needs_f_or_m_rows(demo):
    """Genders spelled otherwise would silently give pooled edges: a clear error instead."""
    manifest, features, _ = demo
    spelled = manifest.assign(gender=manifest["gender"].map({"F": "Female", "M": "Male"}))
    with pytest.raises(ValueError, match=r"gender_specific lists \['PITCH'\], but no fitting row"):
        fit_token_edges(features, spelled, n_bins=5, fit_on="all", gender_specific=["PITCH"])
    with pytest.raises(ValueError, match=r"'Female': \d+"):
        fit_token_edges(features, spelled, n_bins=5, fit_on="all", gender_specific=["PITCH"])
    edges = fit_token_edges(features, spelled, n_bins=5, fit_on="all")  # pooled only: fine
    assert set(edges.edges["PITCH"]) == {"all"}


def test_voiced_clip_with_an_unseen_voice_quality_descriptor_is_flagged(demo):
    manifest, features, _ = demo
    f = features.copy()
    f.loc[5, ["jitterLocal_sma3nz", "shimmerLocaldB_sma3nz"]] = np.nan
    f.loc[6, "F0semitoneFrom27.5Hz_sma3nz"] = np.nan
    tok, _ = tokenize(f, manifest, n_bins=5, fit_on="all", gender_specific=[], **OPTS)
    assert tok.loc[5, "flag"] == "nan_vq:jitter+shimmer"
    assert tok.loc[6, "flag"] == "nan_score:PITCH;nan_vq:f0"
    assert (tok.drop(index=[5, 6])["flag"] == "").all()


def test_a_clipped_file_gets_tokens_from_its_features_but_no_say_in_the_edges(demo):
    """A float file past full scale was `ok`: in the fit, its tokens unflagged."""
    manifest, features, _ = demo
    ok = features["status"].eq("ok")
    kw = dict(n_bins=5, fit_on="all", gender_specific=[], **OPTS)
    ref, ref_edges = tokenize(features, manifest, **kw)
    clipped = features.copy()
    i = int(np.flatnonzero(ok)[0])
    clipped.loc[i, "status"] = "clipped"
    clipped.loc[i, "Loudness_sma3"] *= 50  # far out: it would move the edges if fitted
    tok, edges = tokenize(clipped, manifest, **kw)
    without, _ = tokenize(clipped.drop(index=i), manifest.drop(index=i), **kw)
    assert edges.n_fit == ref_edges.n_fit - 1
    pd.testing.assert_frame_equal(  # no say in the edges
        tok.drop(index=i).reset_index(drop=True), without.reset_index(drop=True)
    )
    assert tok.loc[i, "ENERGY"] == "VERY_HIGH" and tok.loc[i, "flag"].startswith("clipped")
    assert tok.loc[i, "VOICE_QUALITY"] == ref.loc[i, "VOICE_QUALITY"] != "UNVOICED"
    assert measured_tokens(tok).loc[i].all()  # measured, if distorted: Figure 1 counts it


def test_a_corpus_of_clipped_files_fails_naming_them(demo):
    """Every file clipped (float files in int16 scale): 'no utterance to fit token edges
    on (status ok)' did not say why."""
    manifest, features, _ = demo
    hot = features.assign(status="clipped")
    with pytest.raises(ValueError, match=rf"statuses there: clipped {len(hot)}: rescale the audio"):
        tokenize(hot, manifest, n_bins=5, fit_on="all", gender_specific=[], **OPTS)


def test_the_tokens_stage_knows_every_feature_status():
    from cueprobe.features import FeatureStatus
    from cueprobe.tokens import _NOT_ANALYSED

    assert sorted(ANALYSED + _NOT_ANALYSED) == sorted(s.value for s in FeatureStatus)


def test_fit_on_train_uses_train_rows_only(demo):
    manifest, features, _ = demo
    train = manifest["split"] == "train"
    a = fit_token_edges(features, manifest, n_bins=5, fit_on="train")
    b = fit_token_edges(features[train.to_numpy()], manifest[train], n_bins=5, fit_on="all")
    assert a.edges == b.edges and a.n_fit == int(train.sum())


def test_figure_1_counts_measured_tokens_only(demo, tokens):
    """8 of 20 clips without F0 took PITCH=MID and were counted as measured MIDs: the
    middle bubbles, the figure's evidence that tokens separate emotions, grew."""
    manifest, _, _ = demo
    tok, _ = tokens
    labels = sorted(manifest["label"].unique())
    ref = token_frequencies(tok, manifest, vocabularies=vocabularies(5), labels=labels)
    assert (ref["n_filled"] == 0).all()
    first = tok.index[manifest.set_index("utt_id").loc[tok["utt_id"], "label"].eq("sad")][:3]
    holes = tok.copy()
    holes.loc[first, "score_PITCH"] = np.nan
    holes.loc[first, "PITCH"] = "MID"
    holes.loc[first[:1], "flag"] = "too_short"  # not analysed: no VOICE_QUALITY either
    freqs = token_frequencies(holes, manifest, vocabularies=vocabularies(5), labels=labels)
    key = ["concept", "value", "label"]
    pitch = freqs[(freqs["concept"] == "PITCH") & (freqs["label"] == "sad")].set_index("value")
    was = ref[(ref["concept"] == "PITCH") & (ref["label"] == "sad")].set_index("value")
    assert (pitch["n_filled"] == 3).all() and (pitch["n_label"] == was["n_label"] - 3).all()
    moved = was["count"] - tok.loc[first, "PITCH"].value_counts().reindex(was.index, fill_value=0)
    assert pitch["count"].tolist() == moved.tolist()  # the filled-in MIDs are not counted
    vq = freqs[(freqs["concept"] == "VOICE_QUALITY") & (freqs["label"] == "sad")]
    assert (vq["n_filled"] == 1).all()
    others = freqs[(freqs["label"] != "sad") | ~freqs["concept"].isin(["PITCH", "VOICE_QUALITY"])]
    pd.testing.assert_frame_equal(
        others.set_index(key), ref.set_index(key).loc[others.set_index(key).index]
    )
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = plot_token_distribution(freqs, title="demo_iemocap: concept tokens per emotion")
    title = fig._suptitle.get_text()
    assert "not counted, no measurement (token filled in): PITCH 3, VOICE_QUALITY 1" in title
    # the heading fits the page (one line of it ran off both sides of the figure)
    box = fig._suptitle.get_window_extent(renderer=FigureCanvasAgg(fig).get_renderer())
    assert 0 <= box.x0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1
    n_sad = int(manifest["label"].eq("sad").sum())
    assert f"sad n={n_sad}" in title


def test_figure_frequencies_and_plot(demo, tokens):
    manifest, _, _ = demo
    tok, _ = tokens
    labels = ["angry", "happy", "neutral", "sad"]
    freqs = token_frequencies(tok, manifest, vocabularies=vocabularies(5), labels=labels)
    sums = freqs.groupby(["concept", "label"])["freq"].sum()
    assert np.allclose(sums, 1.0) and len(sums) == 6 * 4
    fig = plot_token_distribution(freqs, title="demo")
    assert len(fig.axes) == 6
    # print size: as wide as an IEEE page, so its 6-8 pt text prints at that size (it
    # was 9.9 x 14 in), in one face and weight (a bold one was a second embedded font)
    assert fig.get_figwidth() == PAGE_WIDTH_IN and fig.get_figheight() < 9.0
    assert figure_bytes(fig, "pdf").count(b"/FontFile2") == 1
    # numbers beside their bubbles, never on them: a 6 pt number inside covered every
    # bubble of 25 % or less, and bubble areas could not be compared
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    for ax in fig.axes:
        assert ax.texts
        sizes = np.concatenate([c.get_sizes() for c in ax.collections])  # points^2
        radius = np.sqrt(sizes.max()) / 2 * fig.dpi / 72  # the largest bubble's, pixels
        for t in ax.texts:  # t.xy: its bubble's centre
            centre_x, centre_y = ax.transData.transform(t.xy)
            box = t.get_window_extent(renderer)
            assert box.x0 > centre_x + radius and box.y0 < centre_y < box.y1
    # the fixed style, whatever the user's matplotlibrc says (Figures 2 and 3 had it)
    import matplotlib

    with matplotlib.rc_context({"font.family": "DejaVu Serif"}):
        serif = plot_token_distribution(freqs, title="demo")
    assert figure_bytes(serif, "pdf") == figure_bytes(fig, "pdf")
    # each panel spans its own values: 3 bins filled the left half of a panel as wide as
    # VOICE_QUALITY's six values
    three = freqs[freqs["concept"] != "VOICE_QUALITY"].copy()
    three = three[
        three["value"].isin(["LOW", "MID", "HIGH", "DARK", "BRIGHT", "STATIC", "DYNAMIC"])
    ]
    vq = freqs[freqs["concept"] == "VOICE_QUALITY"]
    fig = plot_token_distribution(pd.concat([three, vq]), title="3 bins")
    for ax in fig.axes:
        assert ax.get_xlim() == (-0.5, len(ax.get_xticks()) - 0.5)
    assert sorted({len(ax.get_xticks()) for ax in fig.axes}) == [3, 6]
    with pytest.raises(ValueError, match=r"labels \['angry'\] are not in the label set"):
        token_frequencies(
            tok, manifest, vocabularies=vocabularies(5), labels=["sad", "happy", "neutral"]
        )
    with pytest.raises(ValueError, match="not in its vocabulary"):
        token_frequencies(tok, manifest, vocabularies=vocabularies(3), labels=labels)
    with pytest.raises(ValueError, match="have no manifest label"):
        token_frequencies(tok, manifest.iloc[1:], vocabularies=vocabularies(5), labels=labels)
    with pytest.raises(ValueError, match=r"lacks concept column\(s\) \['PITCH'\]"):
        token_frequencies(
            tok.drop(columns="PITCH"), manifest, vocabularies=vocabularies(5), labels=labels
        )


def test_cli_tokens_and_figure(demo, tmp_path, capsys):
    manifest, features, _ = demo
    io.write_table(manifest, tmp_path / "m.parquet", "manifest")
    io.write_table(features, tmp_path / "f.parquet", "features")
    args = [
        "tokens",
        "--features",
        str(tmp_path / "f.parquet"),
        "--manifest",
        str(tmp_path / "m.parquet"),
    ]
    args += [
        "--n-bins",
        "3",
        "--fit-on",
        "train",
        "--gender-specific",
        '["PITCH"]',
        "--vq-threshold",
        "1.0",
    ]
    args += [
        "--vq-unvoiced-floor",
        "0.1",
        "--vq-order",
        '["UNVOICED", "ROUGH"]',
        "--template",
        "{concept}={value}",
    ]
    args += [
        "--separator",
        "; ",
        "--out",
        str(tmp_path / "t.parquet"),
        "--edges-out",
        str(tmp_path / "e.json"),
    ]
    assert main(args) == 0
    tok = io.read_table(tmp_path / "t.parquet", "tokens")
    assert set(tok["PITCH"]) == set(level_names("PITCH", 3))
    assert io.read_json(tmp_path / "e.json")["fit_on"] == "train"
    png = tmp_path / "fig.png"
    plot = [
        "plot-token-distribution",
        "--tokens",
        str(tmp_path / "t.parquet"),
        "--edges",
        str(tmp_path / "e.json"),
    ]
    plot += ["--manifest", str(tmp_path / "m.parquet"), "--title", "demo", "--out", str(png)]
    assert main(plot) == 0 and png.stat().st_size > 10_000
    # tokens of part of the corpus drew Figure 1 from that part, exit code 0
    io.write_table(tok.iloc[9:], tmp_path / "part.parquet", "tokens")
    plot[plot.index(str(tmp_path / "t.parquet"))] = str(tmp_path / "part.parquet")
    assert main(plot) == 1
    err = capsys.readouterr().err
    assert f"part.parquet lacks 9 of the {len(manifest)} utterance(s)" in err
    # ... and the other way: tokens of utterances the manifest lacks
    io.write_table(manifest.iloc[2:], tmp_path / "m2.parquet", "manifest")
    plot[plot.index(str(tmp_path / "part.parquet"))] = str(tmp_path / "t.parquet")
    plot[plot.index(str(tmp_path / "m.parquet"))] = str(tmp_path / "m2.parquet")
    assert main(plot) == 1
    assert f"m2.parquet lacks 2 of the {len(manifest)} utterance(s)" in capsys.readouterr().err


def test_tokens_dataclass_is_frozen(tokens):
    with pytest.raises(dataclasses.FrozenInstanceError):
        tokens[1].n_bins = 3


def _pitch_corpus() -> tuple[pd.DataFrame, pd.DataFrame]:
    """30 women (F0 38-42 st) and 10 men (28-32 st) to fit on, and three test rows.

    Pooled F0: median 39.3, IQR 4.2; men alone: median 30, IQR 2. Every test row has
    jitter far above the corpus (robust z > t/2) and the other descriptors at their median.
    """
    rng = np.random.default_rng(0)
    n_f, n_m = 30, 10
    f0 = "F0semitoneFrom27.5Hz_sma3nz"
    fit = pd.DataFrame(rng.normal(size=(n_f + n_m, len(EGEMAPS_LLDS))), columns=list(EGEMAPS_LLDS))
    fit[f0] = np.r_[np.linspace(38, 42, n_f), np.linspace(28, 32, n_m)]
    test = pd.DataFrame(0.0, index=range(3), columns=list(EGEMAPS_LLDS))
    test["jitterLocal_sma3nz"] = 5.0
    test[f0] = [30.0, 25.0, 34.0]  # a typical man, a low man, a low woman
    f = pd.concat([fit, test], ignore_index=True)
    f["voiced_ratio"], f["n_frames"], f["status"] = 0.9, 100, "ok"
    f.insert(0, "utt_id", [f"u{i}" for i in range(len(f))])
    gender = ["F"] * n_f + ["M"] * n_m + ["M", "M", "F"]
    split = ["train"] * (n_f + n_m) + ["test"] * 3
    return f, pd.DataFrame({"utt_id": f["utt_id"], "gender": gender, "split": split})


def test_creaky_uses_within_gender_f0_when_pitch_is_gender_specific():
    """A man with a typical male F0 is not CREAKY, though it is low for the pooled corpus."""
    f, m = _pitch_corpus()
    fit = dict(n_bins=5, fit_on="train", **OPTS)
    tok, edges = tokenize(f, m, gender_specific=["PITCH"], **fit)
    assert edges.f0_by_group == {"F": pytest.approx((40.0, 2.0)), "M": pytest.approx((30.0, 2.0))}
    f0 = "F0semitoneFrom27.5Hz_sma3nz"
    assert (30.0 - edges.centre[f0]) / edges.scale[f0] < -2  # the typical man's pooled z
    # typical man: MODAL; a man low for a man, a woman low for a woman: CREAKY
    assert tok["VOICE_QUALITY"].tail(3).tolist() == ["MODAL", "CREAKY", "CREAKY"]
    # PITCH not gender-specific: no per-gender F0, the pooled z makes the typical man CREAKY
    tok, edges = tokenize(f, m, gender_specific=["FORMANTS"], **fit)
    assert edges.f0_by_group == {}
    assert tok["VOICE_QUALITY"].tail(3).tolist() == ["CREAKY", "CREAKY", "CREAKY"]


def test_edges_with_a_nan_centre_survive_a_json_file(demo, tmp_path):
    """``io.write_json`` writes NaN as null; ``from_dict`` reads null back as NaN."""
    manifest, features, _ = demo
    f = features.assign(mfcc1_sma3=np.nan)  # no finite value: centre and scale NaN
    with pytest.warns(DegenerateDescriptorWarning, match="no finite value"):
        tok, edges = tokenize(
            f, manifest, n_bins=5, fit_on="all", gender_specific=["PITCH"], **OPTS
        )
    assert np.isnan(edges.centre["mfcc1_sma3"]) and np.isnan(edges.scale["mfcc1_sma3"])
    io.write_json(edges.to_dict(), tmp_path / "e.json")
    d = io.read_json(tmp_path / "e.json")
    assert d["centre"]["mfcc1_sma3"] is None
    back = TokenEdges.from_dict(d)
    assert np.isnan(back.centre["mfcc1_sma3"]) and np.isnan(back.scale["mfcc1_sma3"])
    # NaN != NaN: compare with the read-back NaN objects put in (dicts compare by identity first)
    assert back == dataclasses.replace(
        edges,
        centre=edges.centre | {"mfcc1_sma3": back.centre["mfcc1_sma3"]},
        scale=edges.scale | {"mfcc1_sma3": back.scale["mfcc1_sma3"]},
    )
    again = assign_tokens(f, manifest, back, **OPTS)
    pd.testing.assert_frame_equal(again, tok)


def _robust_by_hand(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return med, q3 - q1


def test_concept_scores_are_the_signed_means_of_their_descriptors_z(demo):
    """A BRIGHTNESS descriptor dropped (or a FORMANTS one) passed every test."""
    manifest, features, _ = demo
    tok, _ = tokenize(features, manifest, n_bins=5, fit_on="all", gender_specific=[], **OPTS)
    fit = features[features["status"] == "ok"]

    def z(d: str) -> np.ndarray:
        med, iqr = _robust_by_hand(fit[d].to_numpy(float))
        return (features[d].to_numpy(float) - med) / iqr

    want = {
        "ENERGY": z("Loudness_sma3"),
        "PITCH": z("F0semitoneFrom27.5Hz_sma3nz"),
        "DYNAMICS": z("spectralFlux_sma3"),
        "BRIGHTNESS": (
            z("alphaRatio_sma3")
            - z("hammarbergIndex_sma3")
            + z("slope0-500_sma3")
            + z("slope500-1500_sma3")
        )
        / 4,
        "FORMANTS": (z("F1frequency_sma3nz") + z("F2frequency_sma3nz") + z("F3frequency_sma3nz"))
        / 3,
    }
    by_id = tok.set_index("utt_id").loc[features["utt_id"]]
    for concept, score in want.items():
        np.testing.assert_allclose(by_id[f"score_{concept}"], score, rtol=1e-9, err_msg=concept)


def test_gender_edges_are_fitted_on_that_genders_finite_scores():
    """Two fitting clips of one gender without a PITCH score (no F0 frame) made that
    gender's edges all NaN when they were not left out: every woman VERY_LOW."""
    f, m = _pitch_corpus()
    f0 = "F0semitoneFrom27.5Hz_sma3nz"
    f.loc[[0, 1], f0] = np.nan  # two women of the fitting set
    tok, edges = tokenize(f, m, n_bins=5, fit_on="train", gender_specific=["PITCH"], **OPTS)
    women = (m["gender"] == "F") & (m["split"] == "train")
    score = tok.loc[women.to_numpy(), "score_PITCH"].to_numpy()
    score = score[np.isfinite(score)]
    assert len(score) == 28
    want = np.percentile(score, [20, 40, 60, 80])
    np.testing.assert_allclose(edges.edges["PITCH"]["F"], want, rtol=1e-12)


@pytest.mark.parametrize("status", ["silent", "unreadable", "too_short"])
def test_a_file_not_analysed_has_no_measured_voice_quality(status):
    """Figure 1 counts measured tokens only: a silent or unreadable file's UNVOICED was
    counted as a measurement by a rule no test pinned."""
    f, m = _vq_features([{}, {"status": status, "voiced_ratio": np.nan}])
    if status != "too_short":
        f.loc[1, list(EGEMAPS_LLDS)] = np.nan
    tok = assign_tokens(f, m, _vq_edges(), **OPTS)
    assert tok["VOICE_QUALITY"].tolist() == ["MODAL", "UNVOICED"]
    assert measured_tokens(tok)["VOICE_QUALITY"].tolist() == [True, False]


def test_a_voice_quality_from_a_missing_descriptor_is_not_measured():
    f, m = _vq_features([{}, {"jitterLocal_sma3nz": np.nan}])
    tok = assign_tokens(f, m, _vq_edges(), **OPTS)
    assert "nan_vq:" in tok["flag"].iloc[1]
    assert measured_tokens(tok)["VOICE_QUALITY"].tolist() == [True, False]


def test_each_voice_quality_cue_fires_at_its_threshold_not_before():
    """The cues sat at 2t in the rule's test: BREATHY's h1h2 at 1.5 t (or a floor read
    as `>` instead of `>=`) passed it. Each cue here sits just past t (CREAKY's jitter:
    t/2), then just short of it; the voiced ratio at the floor is voiced."""
    j, s, h = "jitterLocal_sma3nz", "shimmerLocaldB_sma3nz", "HNRdBACF_sma3nz"
    h12, h13, f0 = "logRelF0-H1-H2_sma3nz", "logRelF0-H1-A3_sma3nz", "F0semitoneFrom27.5Hz_sma3nz"
    e = 0.01  # the rule's threshold t is 1 on these unit-scaled descriptors
    cases = {
        "ROUGH": ({j: 1 + e, s: 1 + e}, {j: 1 + e, s: 1 - e}),
        "BREATHY": ({h: -1 - e, h12: 1 + e}, {h: -1 - e, h12: 1 - e}),
        "PRESSED": ({h12: -1 - e, h13: -1 - e}, {h12: -1 - e, h13: -1 + e}),
        "CREAKY": ({f0: -1 - e, j: 0.5 + e}, {f0: -1 - e, j: 0.5 - e}),
    }
    for value, (past, short) in cases.items():
        f, m = _vq_features([past, short])
        assert assign_tokens(f, m, _vq_edges(), **OPTS)["VOICE_QUALITY"].tolist() == [
            value,
            "MODAL",
        ], value
    # the other cue of each two-cue clause short of t too
    for past in ({j: 1 - e, s: 1 + e}, {h: -1 + e, h12: 1 + e}, {h12: -1 + e, h13: -1 - e}):
        f, m = _vq_features([past])
        assert assign_tokens(f, m, _vq_edges(), **OPTS)["VOICE_QUALITY"].tolist() == ["MODAL"]
    floor = VoiceQualityRule().unvoiced_floor
    f, m = _vq_features([{"voiced_ratio": floor}, {"voiced_ratio": np.nextafter(floor, 0)}])
    tok = assign_tokens(f, m, _vq_edges(), **OPTS)
    assert tok["VOICE_QUALITY"].tolist() == ["MODAL", "UNVOICED"]


def test_figure_1_frequencies_and_heading_leave_filled_tokens_out():
    """Frequencies over measured and filled clips (summing to 0.75), the heading's
    filled count or n per emotion taken wrongly, or two voice qualities swapped in the
    figure's order: all passed (a mutation review)."""
    from cueprobe.figures.token_distribution import _heading

    vocab = vocabularies(3)
    assert vocab["VOICE_QUALITY"] == ["MODAL", "BREATHY", "PRESSED", "ROUGH", "CREAKY", "UNVOICED"]
    tokens = pd.DataFrame({"utt_id": [f"u{i}" for i in range(5)]})
    for concept in ORDINAL_CONCEPTS:
        tokens[concept.value] = "MID"
        tokens[f"score_{concept}"] = 0.0
    tokens["PITCH"] = ["LOW", "LOW", "MID", "MID", "HIGH"]
    tokens.loc[[2, 3], "score_PITCH"] = np.nan  # filled in: no F0 measured
    tokens["VOICE_QUALITY"], tokens["flag"] = "MODAL", ""
    # the happy clip was not analysed: every token of it filled in
    tokens.loc[4, [f"score_{c}" for c in ORDINAL_CONCEPTS]] = np.nan
    tokens.loc[4, ["PITCH", "VOICE_QUALITY", "flag"]] = ["MID", "UNVOICED", "too_short"]
    manifest = pd.DataFrame({"utt_id": tokens["utt_id"], "label": ["sad"] * 4 + ["happy"]})
    freqs = token_frequencies(tokens, manifest, vocabularies=vocab, labels=["sad", "happy"])
    pitch = freqs[freqs["concept"] == "PITCH"].set_index(["label", "value"])
    assert pitch.loc[("sad", "LOW"), ["count", "n_label", "n_filled", "freq"]].tolist() == [
        2, 2, 2, 1.0,
    ]  # fmt: skip
    sums = freqs[freqs["n_label"] > 0].groupby(["concept", "label"])["freq"].sum()
    np.testing.assert_allclose(sums, 1.0)
    assert freqs.loc[freqs["label"] == "happy", "freq"].isna().all()  # nothing measured
    heading = _heading(freqs, "t")
    assert heading[2] == "sad n=4, happy n=1"
    assert heading[3] == (
        "not counted, no measurement (token filled in): ENERGY 1, PITCH 3, DYNAMICS 1, "
        "BRIGHTNESS 1, FORMANTS 1, VOICE_QUALITY 1"
    )
