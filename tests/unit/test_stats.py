"""Statistics against reference implementations, and the clustered bootstrap's behaviour."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from scipy.stats import permutation_test
from scipy.stats import rankdata
from scipy.stats import spearmanr
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from cueprobe.interventions import condition_levels
from cueprobe.metrics import DegenerateEffectWarning
from cueprobe.metrics import uar_score
from cueprobe.stats import EXACT_SPEARMAN_N
from cueprobe.stats import SPEARMAN_PERMUTATIONS
from cueprobe.stats import bootstrap_uar
from cueprobe.stats import evaluate
from cueprobe.stats import holm
from cueprobe.stats import mcnemar_exact
from cueprobe.stats import mcnemar_levels
from cueprobe.stats import paired_bootstrap_uar
from cueprobe.stats import percentile_ci
from cueprobe.stats import seed_interval
from cueprobe.stats import speaker_resamples
from cueprobe.stats import spearman
from cueprobe.stats import uar_replicates

LABELS = ["angry", "happy", "neutral", "sad"]


def naive_uar_replicates(y_true, y_pred, speakers, *, n_resamples, seed):
    """Reference: one resample at a time, drawing speakers and pooling utterances."""
    rng = np.random.default_rng(seed)
    uniq = np.unique(speakers)
    members = [np.flatnonzero(speakers == s) for s in uniq]
    out = []
    for _ in range(n_resamples):
        pool = np.concatenate([members[i] for i in rng.integers(0, len(uniq), size=len(uniq))])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateEffectWarning)
            out.append(uar_score(y_true[pool], y_pred[pool], labels=LABELS))
    return np.array(out)


def data(seed, n=400, n_speakers=8, acc=0.7):
    rng = np.random.default_rng(seed)
    y_true = rng.choice(LABELS, size=n)
    speakers = np.array([f"s{i}" for i in rng.integers(0, n_speakers, size=n)])
    y_pred = np.where(rng.random(n) < acc, y_true, rng.choice([*LABELS, ""], size=n))
    return y_true, y_pred, speakers


# --- references ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(30))
def test_mcnemar_equals_statsmodels_exact_and_scipy_binomtest(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    a = rng.random(n) < rng.random()
    b = rng.random(n) < rng.random()
    res = mcnemar_exact(a, b)
    table = [[(a & b).sum(), (a & ~b).sum()], [(~a & b).sum(), (~a & ~b).sum()]]
    assert (res.b, res.c) == (table[0][1], table[1][0])
    assert res.pvalue == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-9)
    if res.b + res.c:
        assert res.pvalue == pytest.approx(binomtest(res.b, res.b + res.c).pvalue, abs=1e-9)


def test_mcnemar_no_discordant_pairs_gives_p_one():
    assert mcnemar_exact([1, 0], [1, 0]).pvalue == 1.0


def test_mcnemar_levels_is_the_least_significant_seed():
    rng = np.random.default_rng(3)
    a = rng.random(400) < 0.8
    seeds = [rng.random(400) < acc for acc in (0.5, 0.6, 0.75)]
    single = mcnemar_levels([a], [seeds[0]])
    assert single == mcnemar_exact(a, seeds[0])
    per_seed = [mcnemar_exact(a, s) for s in seeds]
    assert mcnemar_levels([a], seeds) == max(per_seed, key=lambda t: t.pvalue)
    assert mcnemar_levels(seeds, [a]).pvalue == max(t.pvalue for t in per_seed)
    with pytest.raises(ValueError, match="at least one seed"):
        mcnemar_levels([a], [])


def test_mcnemar_levels_needs_every_seed_on_one_side():
    """One seed far worse than aligned, one far better: aligned differs from each, but
    the level is not better nor worse than aligned (the summary reads the side from
    the seed-averaged difference, here ~0): not significant."""
    rng = np.random.default_rng(4)
    a = rng.random(400) < 0.6
    seeds = [rng.random(400) < 0.3, rng.random(400) < 0.9]
    per_seed = [mcnemar_exact(a, s) for s in seeds]
    assert max(t.pvalue for t in per_seed) < 1e-6
    assert {t.b > t.c for t in per_seed} == {True, False}
    level = mcnemar_levels([a], seeds)
    assert level.pvalue == 1.0
    worst = max(per_seed, key=lambda t: t.pvalue)  # b and c: the least significant seed's
    assert (level.b, level.c) == (worst.b, worst.c)


def test_mcnemar_levels_keeps_its_level_where_a_seed_majority_vote_does_not():
    """Aligned and five seeds drawn alike (the null: the perturbation changes nothing).
    A majority vote over the seeds is an ensemble, a better system than any one seed,
    and McNemar finds it; the intersection-union test rejects at most alpha."""
    rng = np.random.default_rng(0)
    n_runs, n, alpha = 200, 500, 0.05
    rejected = {"levels": 0, "majority": 0}
    for _ in range(n_runs):
        p_right = rng.uniform(0.5, 0.8, size=n)  # each utterance's difficulty
        a, *seeds = (rng.random(n) < p_right for _ in range(6))
        vote = np.mean(seeds, axis=0) > 0.5
        rejected["levels"] += mcnemar_levels([a], seeds).pvalue < alpha
        rejected["majority"] += mcnemar_exact(a, vote).pvalue < alpha
    assert rejected["levels"] / n_runs <= alpha
    assert rejected["majority"] / n_runs > 0.5  # measured 0.93


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([1, 0], [1], "must be 1-d of one length"),
        ([1, 2], [1, 0], "correctness must be 0 or 1"),
        ([1, 0.5], [1, 0], "correctness must be 0 or 1"),
    ],
)
def test_mcnemar_input_errors(a, b, message):
    with pytest.raises(ValueError, match=message):
        mcnemar_exact(a, b)


@pytest.mark.parametrize("seed", range(30))
def test_holm_equals_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = rng.random(int(rng.integers(1, 40))) ** 3
    p[rng.random(len(p)) < 0.2] = p[0]  # ties
    want = multipletests(p, method="holm")[1]
    np.testing.assert_allclose(holm(p), want, atol=1e-9, rtol=0)


def test_holm_leaves_nan_out_of_the_family():
    got = holm([0.01, np.nan, 0.02])
    np.testing.assert_allclose(got, [0.02, np.nan, 0.02])
    assert np.isnan(holm([np.nan])).all()
    with pytest.raises(ValueError, match=r"p-values must lie in \[0, 1\]"):
        holm([0.5, 1.5])


def _abs_rho_permutation_p(x, y, n_resamples):
    """scipy's permutation test of |rho| (exact with n_resamples=np.inf): ranks by scipy's
    rankdata, rho as Pearson's r of the ranks, vectorised over orderings."""
    ry = rankdata(y) - rankdata(y).mean()

    def abs_rho(v, axis=-1):
        rv = rankdata(v, axis=axis)
        rv = rv - rv.mean(axis=axis, keepdims=True)
        return np.abs(rv @ ry) / np.sqrt((rv * rv).sum(axis=axis) * (ry @ ry))

    return permutation_test(
        (x,), abs_rho, permutation_type="pairings", vectorized=True,
        n_resamples=n_resamples, alternative="greater", random_state=0,
    ).pvalue  # fmt: skip


@pytest.mark.parametrize("seed", range(30))
def test_spearman_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 12)) if seed < 10 else int(rng.integers(3, 60))
    x = rng.choice([0, 0.25, 0.5, 0.75, 1.0], size=n)  # ties as in the (p, seed) grid
    y = -x + rng.normal(0, rng.random(), size=n)
    if np.ptp(x) == 0:
        x[0] += 1
    got = spearman(x, y)
    assert got.rho == pytest.approx(spearmanr(x, y).statistic, abs=1e-9)
    if n > EXACT_SPEARMAN_N:  # random orderings: within 4 standard errors of scipy's
        want = _abs_rho_permutation_p(x, y, 4000)
        se = np.sqrt(want * (1 - want) / 4000 + want * (1 - want) / SPEARMAN_PERMUTATIONS)
        assert abs(got.pvalue - want) <= 4 * se + 2 / 4000
    else:  # exact: every ordering, as scipy's permutation test does for small n
        exact = permutation_test(
            (x,), lambda v: spearmanr(v, y).statistic, permutation_type="pairings",
            n_resamples=np.inf,
        )  # fmt: skip
        assert got.pvalue == pytest.approx(exact.pvalue, abs=1e-9)
    assert got.n == n


@pytest.mark.parametrize("n", [EXACT_SPEARMAN_N, EXACT_SPEARMAN_N + 1])
def test_spearman_p_is_a_permutation_p_on_either_side_of_the_exact_bound(n):
    """A grid of (p, seed) runs with its ties: exact up to EXACT_SPEARMAN_N runs, random
    orderings past it. scipy's t approximation, used past the bound before, is too small
    there: a perfect trend over 9 runs (3 p x 3 seeds, each p's seeds tied) got p = 0
    for an exact 2 * 3!^3 / 9! = .0012."""
    x = np.repeat(np.linspace(0, 1, (n + 2) // 3), 3)[:n]
    y = 0.9 - 0.2 * x
    exact = _abs_rho_permutation_p(x, y, np.inf)
    got = spearman(x, y, rng=np.random.default_rng(1))
    if n <= EXACT_SPEARMAN_N:
        assert got.pvalue == pytest.approx(exact, abs=1e-12)
    else:
        assert exact == pytest.approx(2 * 6**3 / 362_880)
        assert spearmanr(x, y).pvalue < exact / 100  # the approximation (0 at rho = 1)
        se = np.sqrt(exact * (1 - exact) / SPEARMAN_PERMUTATIONS)
        assert abs(got.pvalue - exact) <= 4 * se
    assert got.rho == -1.0


def test_spearman_p_over_the_default_grid_is_not_the_t_approximation():
    """The demo's FAU-Aibo test split (reference model, 2026-11-24): 25 runs (5 p x 5
    seeds, p = 0 tied to aligned), rho -.396: spearmanr's p .04998 read "Degradation" at
    alpha .05, the permutation p is .0512 (10^6 orderings), "Inconclusive"; and the p is
    reproducible per rng."""
    x = np.repeat([0, 0.25, 0.5, 0.75, 1.0], 5)
    y = np.array([
        .525483, .525483, .525483, .525483, .525483, .505483, .467302, .482771, .554055,
        .534055, .487302, .491342, .424589, .534055, .497691, .440548, .435382, .487302,
        .550418, .400548, .487302, .451342, .535873, .523665, .364185,
    ])  # fmt: skip
    assert spearmanr(x, y).statistic == pytest.approx(-0.3961, abs=1e-4)
    assert spearmanr(x, y).pvalue < 0.05
    want = _abs_rho_permutation_p(x, y, 40_000)
    assert want > 0.05
    got = spearman(x, y, rng=np.random.default_rng(7))
    assert abs(got.pvalue - want) <= 4 * np.sqrt(want * (1 - want) / 40_000)
    assert got.pvalue > 0.05  # with this rng; the exact p is .0512 +- .0002
    assert spearman(x, y, rng=np.random.default_rng(7)) == got
    assert spearman(x, y, rng=np.random.default_rng(8)).pvalue != got.pvalue  # rng is used
    assert spearman(x, y).pvalue == spearman(x, y).pvalue  # no rng: a fixed seed


def test_a_permutation_p_is_never_0():
    """12 runs of a strictly falling curve (exact p ~1e-8): no random ordering reaches its
    |rho|, and the p counts the observed ordering, (0 + 1) / (B + 1), as scipy does;
    hits / B printed p = 0."""
    x = np.repeat([0.25, 0.5, 0.75, 1.0], 3)
    y = 0.8 - 0.2 * x - 0.001 * np.tile([0, 1, 2], 4)
    got = spearman(x, y, rng=np.random.default_rng(0))
    assert got.rho < -0.97 and got.pvalue == 1 / (SPEARMAN_PERMUTATIONS + 1)


def test_evaluate_rho_p_is_the_exact_spearman_p_of_the_corrupt_runs():
    """Nothing checked the curve's p, from which the summary reads its trend verdict (a
    halved p turned "Inconclusive" into "Trend across runs only")."""
    rng = np.random.default_rng(0)
    n = 288
    manifest = pd.DataFrame(
        {
            "utt_id": [f"u{i:04d}" for i in range(n)],
            "speaker": np.repeat([f"s{i}" for i in range(12)], 24),
            "split": "test",
            "label": np.tile(LABELS, n // 4),
        }
    )
    acc = {"audio_only": 0.5, "aligned": 0.8}
    acc |= {f"corrupt_p{q}_s{s}": 0.8 - 0.002 * q for q in (25, 50, 75, 100) for s in range(2)}
    preds = {}
    for name, a in acc.items():
        pred = np.where(rng.random(n) < a, manifest["label"], "")
        preds[name] = pd.DataFrame(
            {"utt_id": manifest["utt_id"], "pred": pred,
             "parse_status": np.where(pred == "", "unparsed", "exact")}
        )  # fmt: skip
    ev = evaluate(
        preds, manifest, labels=LABELS, splits=["test"], n_resamples=200,
        confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    runs = ev.metrics[ev.metrics["kind"] == "corrupt"]
    assert len(runs) == 8 <= EXACT_SPEARMAN_N
    want = _abs_rho_permutation_p(runs["p"].to_numpy(), runs["uar"].round(12).to_numpy(), np.inf)
    assert 0.01 < want < 0.5
    assert ev.corruption["rho_p"].iloc[0] == pytest.approx(want, abs=1e-12)
    assert ev.corruption["rho"].iloc[0] == pytest.approx(spearmanr(runs["p"], runs["uar"])[0])


def _naive_uar_replicates(y_true, y_pred, codes, weights, labels):
    """UAR of each resample by a plain loop over resamples and classes (no vectorising)."""
    out = []
    for w_spk in weights:
        w = w_spk[codes]
        recalls = [
            (w * ((y_true == c) & (y_pred == c))).sum() / (w * (y_true == c)).sum()
            for c in labels
            if (w * (y_true == c)).sum() > 0
        ]
        out.append(np.mean(recalls))
    return np.array(out)


def test_evaluate_cis_are_paired_and_pool_every_seed():
    """Recomputed by hand from the same speaker draws: each comparison's CI is the
    percentile interval of the paired differences, a level's replicates the mean over
    its seeds (not its first seed's), and the corruption curve's SD has ddof 1."""
    manifest, preds = fake_run(seed=3)
    kw = dict(labels=LABELS, splits=["test"], n_resamples=300, confidence_level=0.9)
    ev = evaluate(preds, manifest, rng=np.random.default_rng(11), **kw)
    rows = manifest.sort_values("utt_id").reset_index(drop=True)  # evaluate's order
    res = speaker_resamples(rows["speaker"], n_resamples=300, rng=np.random.default_rng(11))
    y_true = rows["label"].to_numpy(dtype=object)
    reps, est = {}, {}
    for name, p in preds.items():
        y = p.set_index("utt_id").loc[rows["utt_id"], "pred"].fillna("").to_numpy(dtype=object)
        reps[name] = _naive_uar_replicates(y_true, y, res.codes, res.weights, LABELS)
        est[name] = uar_score(y_true, y, labels=LABELS)
    for level in ("shuffle", "corrupt_p50", "corrupt_p100"):
        seeds = [n for n in preds if n.startswith(f"{level}_s")]
        reps[level] = np.mean([reps[n] for n in seeds], axis=0)
    comp = ev.comparisons.set_index(["a", "b", "role"])
    for a, b, role in [
        ("aligned", "audio_only", "primary"),
        ("aligned", "shuffle", "primary"),
        ("shuffle", "audio_only", "primary"),
        ("aligned", "corrupt_p100", "primary"),
        ("shuffle_s1", "audio_only", "per_seed"),
    ]:
        want = percentile_ci(reps[a] - reps[b], confidence_level=0.9)
        got = comp.loc[(a, b, role), ["ci_low", "ci_high"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got, want, atol=1e-12, err_msg=f"{a} vs {b} ({role})")
    # the level's CI is not its first seed's
    first = percentile_ci(reps["aligned"] - reps["shuffle_s0"], confidence_level=0.9)
    assert tuple(comp.loc[("aligned", "shuffle", "primary"), ["ci_low", "ci_high"]]) != first
    curve = ev.corruption.set_index("p")
    for p in (0.5, 1.0):
        uars = [est[f"corrupt_p{round(100 * p)}_s{s}"] for s in range(3)]
        assert curve.loc[p, "uar_sd"] == pytest.approx(np.std(uars, ddof=1), abs=1e-12)


def test_spearman_perfect_and_degenerate():
    assert spearman([0, 1, 2], [3, 2, 1]).rho == -1.0
    # a perfect order of 3 runs: 2 of the 6 orderings are as extreme (it was p = 0)
    assert spearman([0, 1, 2], [3, 2, 1]).pvalue == pytest.approx(1 / 3)
    # 9 distinct runs in perfect order: 2 of 9! orderings; the random ones' p is never 0
    # (the t approximation gave 0)
    p9 = spearman(np.arange(9), -np.arange(9)).pvalue
    assert 1 / (SPEARMAN_PERMUTATIONS + 1) <= p9 <= 5e-5
    with pytest.warns(DegenerateEffectWarning, match="Spearman's rho is undefined"):
        assert np.isnan(spearman([0, 0.5, 1], [0.4, 0.4, 0.4]).rho)
    with pytest.warns(DegenerateEffectWarning, match="Spearman's rho is undefined"):
        assert np.isnan(spearman([0, 1], [1, 0]).pvalue)
    with pytest.raises(ValueError, match="`x` and `y` must be 1-d of one length"):
        spearman([0, 1, 2], [1, 2])


def test_seed_interval_is_the_t_interval_and_nan_for_one_seed():
    from scipy import stats

    v = np.array([0.61, 0.58, 0.55, 0.60, 0.57])
    mean, low, high = seed_interval(v, confidence_level=0.95)
    want = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert (low, high) == pytest.approx(want, abs=1e-12)
    assert mean == pytest.approx(v.mean())
    with pytest.warns(DegenerateEffectWarning, match="one seed only"):
        assert np.isnan(seed_interval([0.5], confidence_level=0.95)[1])


# --- the speaker-clustered bootstrap -------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_replicates_equal_the_naive_loop(seed):
    y_true, y_pred, speakers = data(seed, n=150, n_speakers=5)
    res = speaker_resamples(speakers, n_resamples=200, rng=np.random.default_rng(seed))
    rep = uar_replicates(y_true, {"x": y_pred}, res, labels=LABELS)
    want = naive_uar_replicates(y_true, y_pred, speakers, n_resamples=200, seed=seed)
    np.testing.assert_allclose(rep.replicates[0], want, atol=1e-12, rtol=0)
    assert rep.estimate[0] == pytest.approx(uar_score(y_true, y_pred, labels=LABELS))


@pytest.mark.parametrize("seed", range(10))
def test_ci_contains_the_point_estimate(seed):
    y_true, y_pred, speakers = data(seed)
    res = bootstrap_uar(
        y_true, y_pred, speakers, labels=LABELS, n_resamples=1000, confidence_level=0.95,
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    assert res.ci_low <= res.estimate <= res.ci_high
    assert res.ci_low < res.ci_high
    assert res.n == 400 and res.n_speakers == 8 and res.n_resamples == 1000


def test_one_utterance_per_speaker_is_the_iid_bootstrap():
    """Speakers named in utterance order: the same draws resample utterances iid."""
    rng = np.random.default_rng(5)
    n = 120
    y_true = rng.choice(LABELS, size=n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.choice(LABELS, size=n))
    speakers = np.array([f"u{i:04d}" for i in range(n)])
    res = bootstrap_uar(
        y_true, y_pred, speakers, labels=LABELS, n_resamples=300, confidence_level=0.95,
        rng=np.random.default_rng(11),
    )  # fmt: skip
    iid = np.random.default_rng(11)
    want = []
    for _ in range(300):
        idx = iid.integers(0, n, size=n)
        want.append(uar_score(y_true[idx], y_pred[idx], labels=LABELS))
    np.testing.assert_allclose(res.distribution, want, atol=1e-12, rtol=0)
    assert (res.ci_low, res.ci_high) == pytest.approx(
        tuple(np.quantile(want, [0.025, 0.975])), abs=1e-12
    )


def test_all_utterances_of_a_speaker_move_together():
    """Speakers entirely right or entirely wrong: every resampled UAR is k / n_speakers.

    An iid bootstrap over utterances would give values between the grid points.
    """
    n_speakers, per = 10, 40
    speakers = np.repeat([f"s{i}" for i in range(n_speakers)], per)
    y_true = np.tile(np.repeat(LABELS, per // 4), n_speakers)
    right = np.repeat(np.arange(n_speakers) % 2 == 0, per)
    y_pred = np.where(right, y_true, "")
    res = bootstrap_uar(
        y_true, y_pred, speakers, labels=LABELS, n_resamples=2000, confidence_level=0.95,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    grid = res.distribution * n_speakers
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-9)
    # the spread is that of 10 clusters, not of 400 utterances
    assert res.ci_high - res.ci_low >= 0.5


def test_paired_difference_uses_the_same_resamples():
    y_true, pred_a, speakers = data(1)
    pred_b = np.where(np.random.default_rng(2).random(len(y_true)) < 0.9, pred_a, "")
    kw = dict(labels=LABELS, n_resamples=500, confidence_level=0.95)
    paired = paired_bootstrap_uar(
        y_true, pred_a, pred_b, speakers, **kw, rng=np.random.default_rng(3)
    )
    a = bootstrap_uar(y_true, pred_a, speakers, **kw, rng=np.random.default_rng(3))
    b = bootstrap_uar(y_true, pred_b, speakers, **kw, rng=np.random.default_rng(3))
    np.testing.assert_allclose(paired.distribution, a.distribution - b.distribution, atol=1e-12)
    assert paired.estimate == pytest.approx(a.estimate - b.estimate)
    assert paired.ci_low > 0  # b only loses answers


def test_same_seed_same_result_and_other_seed_differs():
    y_true, y_pred, speakers = data(4)
    kw = dict(labels=LABELS, n_resamples=300, confidence_level=0.95)
    r1 = bootstrap_uar(y_true, y_pred, speakers, **kw, rng=np.random.default_rng(9))
    r2 = bootstrap_uar(y_true, y_pred, speakers, **kw, rng=np.random.default_rng(9))
    r3 = bootstrap_uar(y_true, y_pred, speakers, **kw, rng=np.random.default_rng(10))
    assert r1 == r2
    np.testing.assert_array_equal(r1.distribution, r2.distribution)
    assert not np.array_equal(r1.distribution, r3.distribution)


def test_degenerate_resamples_are_counted_and_warned():
    # speaker s0 alone holds every 'sad' utterance: resamples without s0 lack 'sad'
    y_true = np.array(["sad"] * 5 + ["angry", "happy", "neutral"] * 5)
    speakers = np.array(["s0"] * 5 + [f"s{1 + i // 5}" for i in range(15)])
    with pytest.warns(DegenerateEffectWarning, match=r"of 400 resamples lack at least one class"):
        res = bootstrap_uar(
            y_true, y_true, speakers, labels=LABELS, n_resamples=400, confidence_level=0.95,
            rng=np.random.default_rng(0),
        )  # fmt: skip
    # P(s0 not drawn in 4 draws) = (3/4)^4 ~ 0.32
    assert 80 < res.n_degenerate < 180
    assert res.estimate == 1.0 and res.ci_low == 1.0
    # evaluate reports the same count for every system and every comparison of the split
    manifest, preds = fake_run(seed=1, n_speakers=8)
    lone = (manifest["label"] == "sad") & (manifest["speaker"] != "s0")
    manifest.loc[lone, "label"] = "neutral"  # s0 alone holds every 'sad' utterance
    with pytest.warns(DegenerateEffectWarning, match="lack at least one class"):
        ev = evaluate(
            preds, manifest, labels=LABELS, splits=["test"], n_resamples=400,
            confidence_level=0.95, rng=np.random.default_rng(0),
        )  # fmt: skip
    counts = set(ev.metrics["n_degenerate"]) | set(ev.comparisons["n_degenerate"])
    assert len(counts) == 1 and 100 < counts.pop() < 180  # P(no s0 in 8 draws) = (7/8)^8 ~ 0.34


def test_a_class_absent_from_the_split_makes_no_resample_degenerate():
    # no 'sad' at all, and every speaker has the other three classes: the point estimate
    # averages over three classes, as every resample does; nothing is degenerate
    y_true = np.array(["angry", "happy", "neutral"] * 8)
    speakers = np.array([f"s{i // 4}" for i in range(24)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateEffectWarning)
        res = bootstrap_uar(
            y_true, y_true, speakers, labels=LABELS, n_resamples=200, confidence_level=0.95,
            rng=np.random.default_rng(0),
        )  # fmt: skip
    assert res.n_degenerate == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"speakers": ["a"], "n_resamples": 0}, "`n_resamples` must be a positive integer"),
        ({"speakers": [], "n_resamples": 5}, "`speakers` is empty"),
        ({"speakers": ["a", None], "n_resamples": 5}, "`speakers` has missing values"),
    ],
)
def test_resample_input_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        speaker_resamples(**kwargs, rng=np.random.default_rng(0))


def test_replicate_input_errors():
    res = speaker_resamples(["a", "b"], n_resamples=3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="`resamples` covers 2 utterances but `y_true` has 3"):
        uar_replicates(["sad"] * 3, {"x": ["sad"] * 3}, res, labels=LABELS)
    with pytest.raises(ValueError, match="`y_pred` names no system"):
        uar_replicates(["sad"] * 2, {}, res, labels=LABELS)
    with pytest.raises(ValueError, match=r"`confidence_level` must lie in \(0, 1\)"):
        percentile_ci([0.1, 0.2], confidence_level=95)
    rep = uar_replicates(["sad"] * 2, {"x": ["sad"] * 2}, res, labels=LABELS)
    assert rep.n_degenerate == 0  # the split has 'sad' only: no resample lacks a class of it
    with pytest.raises(KeyError, match="no system 'y'"):
        rep.index("y")
    assert np.isnan(percentile_ci([np.nan], confidence_level=0.9)).all()
    # NaN replicates (a resample without a class) are left out, not propagated
    assert percentile_ci([0.5, np.nan, 0.6, 0.7], confidence_level=0.9) == pytest.approx(
        (0.51, 0.69)
    )


# --- evaluate: one (corpus, model) ----------------------------------------------


def fake_run(seed=0, n_speakers=6, per=24, split_of=None):
    """A manifest and predictions whose accuracy falls with corruption."""
    rng = np.random.default_rng(seed)
    n = n_speakers * per
    manifest = pd.DataFrame(
        {
            "utt_id": [f"u{i:04d}" for i in range(n)],
            "speaker": np.repeat([f"s{i}" for i in range(n_speakers)], per),
            "split": "test" if split_of is None else [split_of(i) for i in range(n)],
            "label": np.tile(LABELS, n // 4),
        }
    )
    acc = {"audio_only": 0.5, "aligned": 0.8, "conflict": 0.55}
    acc |= {f"shuffle_s{s}": 0.55 for s in range(3)}
    acc |= {
        f"corrupt_p{round(100 * p)}_s{s}": 0.8 - 0.25 * p for p in (0, 0.5, 1) for s in range(3)
    }
    preds = {}
    for name, a in acc.items():
        right = rng.random(n) < a
        pred = np.where(right, manifest["label"], np.where(rng.random(n) < 0.5, "neutral", ""))
        preds[name] = pd.DataFrame(
            {
                "utt_id": manifest["utt_id"][::-1].to_numpy(),  # order must not matter
                "pred": pred[::-1],
                "parse_status": np.where(pred[::-1] == "", "unparsed", "exact"),
            }
        )
    return manifest, preds


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_distinct_resamples_are_the_multisets_of_k_speakers(k):
    """k speakers have C(2k - 1, k) distinct resamples, and enough draws find them all."""
    from math import comb

    res = speaker_resamples(
        [f"s{i}" for i in range(k)], n_resamples=20_000, rng=np.random.default_rng(k)
    )
    assert res.n_distinct == comb(2 * k - 1, k)


def test_a_splits_cis_do_not_depend_on_the_corrupt_runs_or_other_splits_curves():
    """The bootstrap resamples and the Spearman orderings come from separate streams: a
    curve's orderings drawn from the resampling stream moved the next split's CIs when
    corrupt runs were added."""
    manifest, preds = fake_run(
        seed=3, n_speakers=12, split_of=lambda i: "dev" if i < 144 else "test"
    )
    plain = {k: v for k, v in preds.items() if not k.startswith("corrupt")}
    kw = dict(labels=LABELS, splits=["dev", "test"], n_resamples=300, confidence_level=0.95)
    with_curve = evaluate(preds, manifest, rng=np.random.default_rng(0), **kw)
    without = evaluate(plain, manifest, rng=np.random.default_rng(0), **kw)
    cols = ["split", "a", "b", "role", "ci_low", "ci_high"]
    both = with_curve.comparisons[cols].merge(without.comparisons[cols], on=cols[:4])
    assert len(both) == len(without.comparisons) > 0
    np.testing.assert_array_equal(both["ci_low_x"], both["ci_low_y"])
    np.testing.assert_array_equal(both["ci_high_x"], both["ci_high_y"])


def test_exactly_min_ci_speakers_is_no_few_speaker_split():
    from cueprobe.metrics import MIN_CI_SPEAKERS

    manifest, preds = fake_run(seed=2, n_speakers=MIN_CI_SPEAKERS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateEffectWarning)
        evaluate(
            preds, manifest, labels=LABELS, splits=["test"], n_resamples=200,
            confidence_level=0.95, rng=np.random.default_rng(0),
        )  # fmt: skip


def test_evaluate_flags_splits_with_few_speakers():
    """Below MIN_CI_SPEAKERS a split is evaluated, with a warning and its distinct count."""
    from cueprobe.stats import MIN_CI_SPEAKERS

    def split_of(i):  # fake_run: 24 utterances per speaker, speakers s0..s5
        return "dev" if i < 2 * 24 else "test"

    manifest, preds = fake_run(seed=3, split_of=split_of)
    with pytest.warns(DegenerateEffectWarning, match=r"split 'dev' has 2 speaker\(s\): 3 distinct"):
        ev = evaluate(
            preds, manifest, labels=LABELS, splits=["dev", "test"], n_resamples=500,
            confidence_level=0.95, rng=np.random.default_rng(0),
        )  # fmt: skip
    m = ev.metrics.groupby("split")[["n_speakers", "n_distinct_resamples"]].first()
    assert m.loc["dev"].tolist() == [2, 3]
    assert m.loc["test", "n_speakers"] == 4 < MIN_CI_SPEAKERS
    assert m.loc["test", "n_distinct_resamples"] <= 35  # C(7, 4)
    comp = ev.comparisons.groupby("split")["n_speakers"].unique()
    assert comp["dev"].tolist() == [2] and comp["test"].tolist() == [4]
    with warnings.catch_warnings():  # all 6 speakers: no warning
        warnings.simplefilter("error", DegenerateEffectWarning)
        evaluate(
            preds, manifest, labels=LABELS, splits=["all"], n_resamples=500,
            confidence_level=0.95, rng=np.random.default_rng(0),
        )  # fmt: skip


def test_evaluate_tables():
    manifest, preds = fake_run()
    ev = evaluate(
        preds, manifest, labels=LABELS, splits=["test"], n_resamples=300, confidence_level=0.95,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    m = ev.metrics.set_index("condition")
    assert len(m) == len(preds)
    aligned = preds["aligned"].iloc[::-1]
    assert m.loc["aligned", "uar"] == pytest.approx(
        uar_score(manifest["label"], aligned["pred"], labels=LABELS)
    )
    assert m.loc["aligned", "n_unparsed"] == (aligned["parse_status"] == "unparsed").sum()
    assert (m["ci_low"] <= m["uar"]).all() and (m["uar"] <= m["ci_high"]).all()
    assert m.loc["corrupt_p50_s1", ["kind", "p", "seed"]].tolist() == ["corrupt", 0.5, 1]
    for name in ("audio_only", "aligned", "conflict"):  # no p (not corrupt_p0), no seed
        assert np.isnan(m.loc[name, "p"]) and m.loc[name, "seed"] == -1, name

    conf = ev.confusion
    rates = conf.groupby(["condition", "true"])["rate"].sum()
    np.testing.assert_allclose(rates, 1.0)

    comp = ev.comparisons
    primary = comp[comp["role"] == "primary"]
    assert set(zip(primary["a"], primary["b"], strict=True)) == {
        ("aligned", "audio_only"),
        ("aligned", "shuffle"), ("shuffle", "audio_only"),
        ("aligned", "conflict"), ("conflict", "audio_only"),
        ("aligned", "corrupt_p50"), ("corrupt_p50", "audio_only"),
        ("aligned", "corrupt_p100"), ("corrupt_p100", "audio_only"),
    }  # fmt: skip
    np.testing.assert_allclose(primary["p_holm"], holm(primary["p"]))
    assert comp.loc[comp["role"] == "per_seed", "p_holm"].isna().all()
    shuffle = primary.set_index(["a", "b"]).loc[("aligned", "shuffle")]
    assert shuffle["n_seeds_b"] == 3
    assert shuffle["uar_b"] == pytest.approx(
        m.loc[[f"shuffle_s{s}" for s in range(3)], "uar"].mean()
    )
    gain = primary.set_index(["a", "b"]).loc[("aligned", "audio_only")]
    assert gain["delta"] > 0 and gain["ci_low"] > 0 and gain["p"] < 1e-4
    assert gain["family"] == "token_gain"

    cur = ev.corruption
    assert cur["p"].tolist() == [0.0, 0.5, 1.0]
    assert (cur["n_seeds"] == 3).all() and (cur["n_runs"] == 9).all()
    assert cur["rho"].iloc[0] < -0.5


def test_equal_uars_summed_in_another_order_differ_by_zero_not_by_rounding_noise():
    """Recalls (.1, .2, .3) against (.3, .2, .1): the UARs are equal, but summed in
    another order they differed by 5.6e-17, which Table II printed as +0.00000000000000006
    and which a verdict could read as a CI bound above or below 0."""
    labels = ["angry", "happy", "sad"]
    rows, audio_only, aligned = [], [], []
    for s in range(5):  # every speaker alike: every resample's recalls are the same
        for c, label in enumerate(labels):
            for k in range(10):
                rows.append({"utt_id": f"s{s}_{label}_{k}", "speaker": f"s{s}", "label": label})
                audio_only.append(label if k < c + 1 else "")  # recalls .1 .2 .3
                aligned.append(label if k < 3 - c else "")  # recalls .3 .2 .1
    manifest = pd.DataFrame(rows).assign(split="test")
    preds = {
        name: pd.DataFrame(
            {
                "utt_id": manifest["utt_id"],
                "pred": pred,
                "parse_status": ["exact" if p else "unparsed" for p in pred],
            }
        )  # fmt: skip
        for name, pred in (("audio_only", audio_only), ("aligned", aligned))
    }
    ev = evaluate(
        preds, manifest, labels=labels, splits=["test"], n_resamples=200,
        confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    uar = ev.metrics.set_index("condition")["uar"]
    assert uar["aligned"] != uar["audio_only"]  # the noise is there
    gain = ev.comparisons.set_index(["a", "b"]).loc[("aligned", "audio_only")]
    assert (gain["delta"], gain["ci_low"], gain["ci_high"]) == (0.0, 0.0, 0.0)
    # nor a trend: a corruption curve of equal UARs in noisy sums ranked as rho -1, p .02
    curve = {
        f"corrupt_p{p}_s0": preds["aligned" if k % 2 else "audio_only"]
        for k, p in enumerate((0, 25, 50, 75, 100))
    }
    ev = evaluate(
        preds | curve, manifest, labels=labels, splits=["test"], n_resamples=50,
        confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    assert np.isnan(ev.corruption["rho"]).all()


def test_evaluate_with_a_single_seed_per_intervention():
    """Regression: one shuffle seed and one corrupt seed still form the levels."""
    manifest, preds = fake_run()
    single = {k: v for k, v in preds.items() if not k.endswith(("_s1", "_s2"))}
    ev = evaluate(
        single, manifest, labels=LABELS, splits=["test"], n_resamples=200, confidence_level=0.95,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    primary = ev.comparisons[ev.comparisons["role"] == "primary"].set_index(["a", "b"])
    shuffle = primary.loc[("aligned", "shuffle")]
    assert shuffle["n_seeds_b"] == 1
    assert shuffle["uar_b"] == pytest.approx(
        ev.metrics.set_index("condition").loc["shuffle_s0", "uar"]
    )
    assert ("corrupt_p100", "audio_only") in primary.index
    assert (ev.comparisons["role"] == "per_seed").sum() == 0


def test_evaluate_reports_splits_separately_and_holm_spans_them():
    manifest, preds = fake_run(split_of=lambda i: "dev" if i < 72 else "test")
    ev = evaluate(
        preds, manifest, labels=LABELS, splits=["dev", "test"], n_resamples=200,
        confidence_level=0.95, rng=np.random.default_rng(0),
    )  # fmt: skip
    assert ev.metrics.groupby("split")["n"].first().to_dict() == {"dev": 72, "test": 72}
    primary = ev.comparisons[ev.comparisons["role"] == "primary"]
    assert len(primary) == 18
    np.testing.assert_allclose(primary["p_holm"], holm(primary["p"]))
    ev_all = evaluate(
        preds, manifest, labels=LABELS, splits=["all"], n_resamples=200, confidence_level=0.95,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    assert ev_all.metrics["n"].unique().tolist() == [144]


def test_evaluate_errors():
    manifest, preds = fake_run()
    kw = dict(labels=LABELS, n_resamples=50, confidence_level=0.95, rng=np.random.default_rng(0))
    short = dict(preds)
    short["aligned"] = preds["aligned"].iloc[2:]
    with pytest.raises(
        ValueError,
        match=r"condition 'aligned' has no prediction for 2 utterance\(s\) of split 'test'",
    ):
        evaluate(short, manifest, splits=["test"], **kw)
    twice = dict(preds)
    twice["aligned"] = pd.concat([preds["aligned"], preds["aligned"].iloc[[3]]])
    dup = preds["aligned"]["utt_id"].iloc[3]
    with pytest.raises(
        ValueError, match=rf"condition 'aligned' has more than one prediction for .*'{dup}'"
    ):
        evaluate(twice, manifest, splits=["test"], **kw)
    with pytest.raises(ValueError, match="the manifest has no utterance in split 'dev'"):
        evaluate(preds, manifest, splits=["dev"], **kw)
    with pytest.raises(ValueError, match="unknown condition 'bogus'"):
        evaluate({"bogus": preds["aligned"]}, manifest, splits=["test"], **kw)
    with pytest.raises(ValueError, match="manifest lacks column 'speaker'"):
        evaluate(preds, manifest.drop(columns="speaker"), splits=["test"], **kw)
    with pytest.raises(ValueError, match="predictions of condition 'aligned' lack column 'pred'"):
        evaluate(
            {"aligned": preds["aligned"].drop(columns="pred")}, manifest, splits=["test"], **kw
        )
    # scored from pred, counted from parse_status: an `error` row with a label was both
    # counted unparsed and scored right
    lying = preds["aligned"].copy()
    lying.loc[lying.index[0], "parse_status"] = "error"
    lying.loc[lying.index[0], "pred"] = "sad"
    with pytest.raises(
        ValueError,
        match=r"'aligned': 1 row\(s\) of parse status unparsed/error carry a label, e\.g\. .* "
        r"\(error, pred 'sad'\); such an answer counts as wrong, so its pred must be empty",
    ):
        evaluate({"aligned": lying}, manifest, splits=["test"], **kw)
    # ... and the other way: a parsed row whose pred is no label (parsed under another
    # label set) was scored wrong without being counted unparsed
    for pred in (None, "happiness"):
        foreign = preds["aligned"].copy()
        foreign.loc[foreign.index[0], "pred"] = pred
        with pytest.raises(
            ValueError,
            match=r"'aligned': 1 parsed row\(s\) carry a pred outside the label set .*"
            r"another label set\? Re-run the inference rules \(`snakemake --forcerun query_audio_only",
        ):
            evaluate({"aligned": foreign}, manifest, splits=["test"], **kw)
    # predictions of utterances the manifest lacks (a stale manifest beside new
    # predictions) were ignored: n and UAR changed with exit code 0
    with pytest.raises(
        ValueError,
        match=r"'audio_only': 9 utterance\(s\) the manifest lacks \('u0143', .*different runs",
    ):
        evaluate(preds, manifest.iloc[:-9], splits=["test"], **kw)
    # ... and a prediction's split or label that is not the manifest's
    for col, value in (("label", "sad"), ("split", "dev")):
        copied = preds["aligned"].merge(manifest[["utt_id", "split", "label"]], on="utt_id")
        evaluate({**preds, "aligned": copied}, manifest, splits=["test"], **kw)  # agree: fine
        first = copied.index[copied["label"] != "sad"][0] if col == "label" else copied.index[0]
        copied.loc[first, col] = value
        with pytest.raises(
            ValueError, match=rf"'aligned': 1 row\(s\) whose {col} is not the manifest's"
        ):
            evaluate({**preds, "aligned": copied}, manifest, splits=["test"], **kw)
    with pytest.raises(ValueError, match="no predictions to evaluate"):
        evaluate({}, manifest, splits=["test"], **kw)
    with pytest.raises(ValueError, match="`splits` is empty"):
        evaluate(preds, manifest, splits=[], **kw)


def test_condition_levels_pool_seeds():
    assert condition_levels(["audio_only", "corrupt_p0_s0", "corrupt_p0_s1", "shuffle_s3"]) == {
        "audio_only": ["audio_only"],
        "corrupt_p0": ["corrupt_p0_s0", "corrupt_p0_s1"],
        "shuffle": ["shuffle_s3"],
    }
