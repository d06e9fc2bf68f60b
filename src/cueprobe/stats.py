"""The paper's statistics: speaker-clustered bootstrap CIs, exact McNemar, Holm, Spearman.

Speaker-clustered bootstrap
    Utterances of one speaker are not independent, so a resample draws
    *speakers* with replacement (as many as there are) and pools all their
    utterances; UAR is computed on the pool, and the CI is the percentile
    interval of the resampled UARs (Efron & Tibshirani 1993, ch. 13; Field &
    Welsh 2007 for the cluster bootstrap). A resample is a vector of speaker
    multiplicities ``w``, so the per-class correct and total counts of the pool
    are ``w @ C`` and ``w @ T`` (``C``, ``T``: per-speaker per-class counts); all
    resamples of all conditions are one matrix product. Paired differences
    use the same resamples for both systems.

    Degenerate resamples: a resample can miss a class entirely (few speakers,
    rare classes). Its UAR then averages over the classes present in the pool,
    the same rule as the point estimate (:func:`cueprobe.metrics.uar_score`);
    such resamples are counted (``n_degenerate``) and a
    :class:`~cueprobe.metrics.DegenerateEffectWarning` names the count.

    Few speakers: k speakers have only C(2k - 1, k) distinct resamples (3 at
    k = 2, 35 at k = 4, 126 at k = 5, 92,378 at k = 10), so below
    :data:`MIN_CI_SPEAKERS` the 2.5 % tail is one or two speaker configurations
    and the "CI" is not an interval estimate of between-speaker variation (on
    IEMOCAP's held-out session 5, 2 speakers, it comes out implausibly narrow).
    Such splits are evaluated all the same; the tables mark their CIs, the
    cue-use summary says so, and ``n_distinct_resamples`` records the count.

Exact McNemar
    On per-utterance correctness of two systems over the same utterances: with
    ``b`` = a right and b wrong, ``c`` = a wrong and b right, the two-sided
    p-value is ``min(1, 2 * Binom(b + c, 1/2).cdf(min(b, c)))`` (McNemar 1947;
    the exact form as in statsmodels ``mcnemar(exact=True)``).
    An intervention level with several seeds (``shuffle``, ``corrupt_p50``) is
    tested as an intersection-union test (Berger 1982): McNemar of every seed
    against the other side, and the level's result is the least significant
    seed's. The level then differs at alpha only if every seed does, which keeps
    the level of the test whatever the seeds' dependence. A per-utterance majority
    vote over seeds would not: the vote is an ensemble, a different system from any
    seed, and McNemar tells it apart from an equal system (aligned and five seeds
    drawn alike: 86-100 % rejections at alpha = .05, per-seed tests 3-5 %).

Holm
    Step-down family-wise correction (Holm 1979) over each (corpus, model).

Spearman
    Rank correlation of UAR with the corruption probability p over all
    (p, seed) runs; two-sided permutation p-value (exact over at most 8 runs, else
    from :data:`SPEARMAN_PERMUTATIONS` random orderings). Not scipy ``spearmanr``'s
    t approximation: on the grid's ties (the seeds of a p; p = 0 is aligned) it is
    too small (25 runs: .0500 where the permutation p is .0512; a perfect trend over
    9 runs: 0, exact .0012), and it turned an "Inconclusive" verdict into
    "Degradation". That p treats the runs as independent; they share
    the utterances, so it speaks for these utterances only (the cue-use summary's
    verdict also asks the speaker-bootstrap CI at the curve's far end; see
    :func:`cueprobe.summary._degradation`).
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

# scipy.special, not scipy.stats: the same distribution functions (scipy.stats calls
# these), without the 0.8 s import of scipy.stats in every evaluation job (measured)
from scipy import special

from cueprobe.interventions import condition_levels
from cueprobe.interventions import parse_condition
from cueprobe.metrics import MIN_CI_SPEAKERS
from cueprobe.metrics import UAR_DECIMALS
from cueprobe.metrics import UAR_TIE
from cueprobe.metrics import DegenerateEffectWarning
from cueprobe.metrics import class_counts
from cueprobe.metrics import confusion_counts
from cueprobe.metrics import row_normalise
from cueprobe.metrics import uar_score
from cueprobe.metrics import unparsed_count
from cueprobe.metrics import wa_score

__all__ = [
    "BootstrapResult",
    "DegenerateEffectWarning",
    "Evaluation",
    "MIN_CI_SPEAKERS",
    "McNemarResult",
    "SpeakerResamples",
    "SpearmanResult",
    "UARReplicates",
    "bootstrap_uar",
    "evaluate",
    "holm",
    "mcnemar_exact",
    "mcnemar_levels",
    "mcnemar_pvalue",
    "paired_bootstrap_uar",
    "percentile_ci",
    "seed_interval",
    "spearman",
    "speaker_resamples",
    "uar_replicates",
]


# --- speaker-clustered bootstrap ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class SpeakerResamples:
    """Resamples of speakers with replacement, as multiplicities.

    Attributes
    ----------
    speakers : numpy.ndarray of shape (n_speakers,)
        The distinct speakers, sorted.
    codes : numpy.ndarray of shape (n,)
        Each utterance's index into ``speakers``.
    weights : numpy.ndarray of shape (n_resamples, n_speakers)
        How often each speaker is drawn in each resample (rows sum to n_speakers).
    """

    speakers: np.ndarray
    codes: np.ndarray
    weights: np.ndarray = dataclasses.field(repr=False)

    @property
    def n_resamples(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_distinct(self) -> int:
        """Distinct resamples drawn (at most C(2k - 1, k) for k speakers).

        Examples
        --------
        >>> res = speaker_resamples(["a", "b"], n_resamples=1000, rng=np.random.default_rng(0))
        >>> res.n_distinct  # (2, 0), (1, 1), (0, 2)
        3
        """
        return int(len(np.unique(self.weights, axis=0)))


def speaker_resamples(
    speakers: npt.ArrayLike, *, n_resamples: int, rng: np.random.Generator
) -> SpeakerResamples:
    """Draw ``n_resamples`` resamples of the speakers, with replacement.

    Row ``r`` draws ``n_speakers`` indices with ``rng.integers`` (the same
    stream a loop drawing one resample at a time would use) and counts them.

    Examples
    --------
    >>> res = speaker_resamples(["s1", "s1", "s2"], n_resamples=3, rng=np.random.default_rng(0))
    >>> res.weights.sum(axis=1).tolist(), res.codes.tolist()
    ([2, 2, 2], [0, 0, 1])
    """
    if not isinstance(n_resamples, int | np.integer) or n_resamples < 1:
        raise ValueError(f"`n_resamples` must be a positive integer, got {n_resamples!r}.")
    speakers = np.asarray(speakers, dtype=object)
    if len(speakers) == 0:
        raise ValueError("`speakers` is empty: nothing to resample.")
    if pd.isna(speakers).any():
        raise ValueError("`speakers` has missing values; every utterance needs its speaker.")
    uniq, codes = np.unique(speakers.astype(str), return_inverse=True)
    n_spk = len(uniq)
    draws = rng.integers(0, n_spk, size=(n_resamples, n_spk))
    flat = (draws + n_spk * np.arange(n_resamples)[:, None]).ravel()
    weights = np.bincount(flat, minlength=n_resamples * n_spk).reshape(n_resamples, n_spk)
    return SpeakerResamples(speakers=uniq, codes=codes, weights=weights)


@dataclasses.dataclass(frozen=True)
class UARReplicates:
    """UAR of several systems on the same utterances and the same resamples.

    Attributes
    ----------
    systems : tuple of str
    estimate : numpy.ndarray of shape (n_systems,)
        UAR on all utterances.
    replicates : numpy.ndarray of shape (n_systems, n_resamples)
        UAR on each resample.
    n, n_speakers, n_resamples : int
    n_degenerate : int
        Resamples lacking at least one class (UAR over the classes present).
    """

    systems: tuple[str, ...]
    estimate: np.ndarray
    replicates: np.ndarray = dataclasses.field(repr=False)
    n: int
    n_speakers: int
    n_resamples: int
    n_degenerate: int

    def index(self, system: str) -> int:
        try:
            return self.systems.index(system)
        except ValueError:
            raise KeyError(f"no system {system!r}; have {list(self.systems)}") from None


def uar_replicates(
    y_true: npt.ArrayLike,
    y_pred: Mapping[str, npt.ArrayLike],
    resamples: SpeakerResamples,
    *,
    labels: Sequence[str],
) -> UARReplicates:
    """UAR of each system in ``y_pred`` on every resample (vectorised).

    Parameters
    ----------
    y_true : array-like of shape (n,)
    y_pred : mapping of str to array-like of shape (n,)
        One prediction vector per system, aligned with ``y_true``.
    resamples : SpeakerResamples
        From :func:`speaker_resamples` over the same utterances.
    labels : sequence of str

    Warns
    -----
    DegenerateEffectWarning
        When some resamples lack a class (counted in ``n_degenerate``).
    """
    y_true = np.asarray(y_true, dtype=object)
    n = len(y_true)
    if len(resamples.codes) != n:
        raise ValueError(
            f"`resamples` covers {len(resamples.codes)} utterances but `y_true` has {n}."
        )
    if not y_pred:
        raise ValueError("`y_pred` names no system.")
    systems = tuple(y_pred)
    k = len(labels)
    n_spk = len(resamples.speakers)
    correct = []
    for name in systems:
        pred = np.asarray(y_pred[name], dtype=object)
        class_counts(y_true, pred, labels=labels)  # validates shapes and y_true
        correct.append(y_true == pred)
    correct = np.asarray(correct, dtype=np.float64)  # (m, n)
    m = len(systems)
    cls = pd.Index(list(labels)).get_indexer(y_true)
    cell = resamples.codes * k + cls  # speaker-by-class cell of each utterance
    totals = np.bincount(cell, minlength=n_spk * k).reshape(n_spk, k).astype(np.float64)
    flat = (np.arange(m)[:, None] * (n_spk * k) + cell[None, :]).ravel()
    hits = np.bincount(flat, weights=correct.ravel(), minlength=m * n_spk * k)
    hits = hits.reshape(m, n_spk, k)
    # the point estimate: every speaker once (uar_score's mean over present classes)
    all_hits, all_totals = hits.sum(axis=1), totals.sum(axis=0)  # (m, k), (k,)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = (all_hits[:, all_totals > 0] / all_totals[all_totals > 0]).mean(axis=1)
    hits = hits.transpose(1, 0, 2).reshape(n_spk, m * k)
    w = resamples.weights.astype(np.float64)
    num = (w @ hits).reshape(-1, m, k)  # (r, m, k) correct per class in each pool
    den = w @ totals  # (r, k) utterances per class in each pool
    present = den > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = num / den[:, None, :]
    recall = np.where(present[:, None, :], recall, 0.0)
    reps = recall.sum(axis=2) / present.sum(axis=1)[:, None]  # mean over present classes
    # a resample is degenerate when it lacks a class the split has (a class absent from
    # the whole split is absent from the point estimate too: not the resample's doing)
    in_split = totals.sum(axis=0) > 0
    n_degenerate = int((~present[:, in_split]).any(axis=1).sum())
    if n_degenerate:
        warnings.warn(
            f"{n_degenerate} of {resamples.n_resamples} resamples lack at least one class: "
            "their UAR averages over the classes present in the resample.",
            DegenerateEffectWarning,
            stacklevel=2,
        )
    return UARReplicates(
        systems=systems,
        estimate=np.asarray(estimate, dtype=np.float64),
        replicates=np.ascontiguousarray(reps.T),
        n=n,
        n_speakers=n_spk,
        n_resamples=resamples.n_resamples,
        n_degenerate=n_degenerate,
    )


def percentile_ci(replicates: npt.ArrayLike, *, confidence_level: float) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN replicates are ignored).

    Examples
    --------
    >>> [round(v, 6) for v in percentile_ci(np.arange(101) / 100, confidence_level=0.9)]
    [0.05, 0.95]
    """
    if not 0 < confidence_level < 1:
        raise ValueError(f"`confidence_level` must lie in (0, 1), got {confidence_level!r}.")
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[~np.isnan(reps)]
    if not len(reps):
        return float("nan"), float("nan")
    tail = (1 - confidence_level) / 2
    low, high = np.quantile(reps, [tail, 1 - tail])
    return float(low), float(high)


@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    """A point estimate with its speaker-clustered percentile CI.

    ``distribution`` keeps the replicates, so a caller can inspect or extend them.
    """

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    n_speakers: int
    n_resamples: int
    n_degenerate: int
    distribution: np.ndarray = dataclasses.field(repr=False, compare=False)


def _result(estimate, reps, rep: UARReplicates, confidence_level) -> BootstrapResult:
    low, high = percentile_ci(reps, confidence_level=confidence_level)
    return BootstrapResult(
        estimate=float(estimate),
        ci_low=low,
        ci_high=high,
        n=rep.n,
        n_speakers=rep.n_speakers,
        n_resamples=rep.n_resamples,
        n_degenerate=rep.n_degenerate,
        distribution=reps,
    )


def bootstrap_uar(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    speakers: npt.ArrayLike,
    *,
    labels: Sequence[str],
    n_resamples: int,
    confidence_level: float,
    rng: np.random.Generator,
) -> BootstrapResult:
    """UAR with a speaker-clustered percentile bootstrap CI.

    Examples
    --------
    >>> y = ["a", "b"] * 10
    >>> spk = [f"s{i // 4}" for i in range(20)]
    >>> res = bootstrap_uar(y, y, spk, labels=["a", "b"], n_resamples=200,
    ...                     confidence_level=0.95, rng=np.random.default_rng(1))
    >>> res.estimate, res.ci_low, res.ci_high
    (1.0, 1.0, 1.0)
    """
    res = speaker_resamples(speakers, n_resamples=n_resamples, rng=rng)
    rep = uar_replicates(y_true, {"system": y_pred}, res, labels=labels)
    return _result(rep.estimate[0], rep.replicates[0], rep, confidence_level)


def paired_bootstrap_uar(
    y_true: npt.ArrayLike,
    y_pred_a: npt.ArrayLike,
    y_pred_b: npt.ArrayLike,
    speakers: npt.ArrayLike,
    *,
    labels: Sequence[str],
    n_resamples: int,
    confidence_level: float,
    rng: np.random.Generator,
) -> BootstrapResult:
    """UAR(a) - UAR(b) with a CI from the same speaker resamples for both systems."""
    res = speaker_resamples(speakers, n_resamples=n_resamples, rng=rng)
    rep = uar_replicates(y_true, {"a": y_pred_a, "b": y_pred_b}, res, labels=labels)
    delta = rep.replicates[0] - rep.replicates[1]
    return _result(rep.estimate[0] - rep.estimate[1], delta, rep, confidence_level)


# --- tests and corrections ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test: ``b`` = a right & b wrong, ``c`` = a wrong & b right."""

    b: int
    c: int
    pvalue: float


def mcnemar_exact(correct_a: npt.ArrayLike, correct_b: npt.ArrayLike) -> McNemarResult:
    """Exact (binomial) McNemar test on paired per-utterance correctness.

    Parameters
    ----------
    correct_a, correct_b : array-like of shape (n,)
        1 (right) or 0 (wrong), or booleans.

    Examples
    --------
    >>> mcnemar_exact([1, 1, 1, 0, 1], [0, 0, 1, 1, 1])
    McNemarResult(b=2, c=1, pvalue=1.0)
    """
    a = np.asarray(correct_a, dtype=np.float64)
    b_ = np.asarray(correct_b, dtype=np.float64)
    if a.shape != b_.shape or a.ndim != 1:
        raise ValueError(
            f"`correct_a` and `correct_b` must be 1-d of one length, got {a.shape} and {b_.shape}."
        )
    bad = ~np.isin(a, (0.0, 1.0)) | ~np.isin(b_, (0.0, 1.0))
    if bad.any():
        raise ValueError(
            f"correctness must be 0 or 1; {int(bad.sum())} pair(s) are not, "
            f"first at position {int(np.flatnonzero(bad)[0])}."
        )
    b = int(((a == 1) & (b_ == 0)).sum())
    c = int(((a == 0) & (b_ == 1)).sum())
    return McNemarResult(b=b, c=c, pvalue=mcnemar_pvalue(b, c))


def mcnemar_pvalue(b: int, c: int) -> float:
    """Exact two-sided McNemar p of ``b`` and ``c`` discordant pairs (Binomial(b + c, 1/2)).

    Examples
    --------
    >>> mcnemar_pvalue(8, 0), mcnemar_pvalue(2, 1)
    (0.0078125, 1.0)
    """
    return min(1.0, 2.0 * float(special.bdtr(min(b, c), b + c, 0.5)))


def mcnemar_levels(
    correct_a: Sequence[npt.ArrayLike], correct_b: Sequence[npt.ArrayLike]
) -> McNemarResult:
    """Exact McNemar of two intervention levels, each given as its seeds' correctness.

    An intersection-union test: every (seed of a, seed of b) pair is tested with
    :func:`mcnemar_exact` and the least significant one is the result (its ``b``,
    ``c`` and p; the first of equal p-values). With one seed per side it is
    :func:`mcnemar_exact`. Seeds of one level are different draws of one
    intervention, so "aligned differs from shuffle" is claimed only when aligned
    differs from every shuffle seed; the test keeps its level alpha however the
    seeds depend on each other (see the module notes for why not a majority vote).
    The claim is directional (the summary reads who is better from the seed-averaged
    difference), so every pair must favour the same side: the union of the two
    one-sided intersection-union tests, ``min(1, 2 min_side max_pair p_one-sided)``.
    When the pairs agree this is the least significant pair's two-sided p; when they
    disagree, some pair's one-sided p is >= 1/2 on either side, and p is 1 (``b``,
    ``c`` still the least significant pair's).

    Examples
    --------
    >>> a = [[1, 1, 1, 1, 1, 1, 1, 1]]
    >>> seeds = [[0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0]]
    >>> mcnemar_levels(a, seeds)
    McNemarResult(b=6, c=0, pvalue=0.03125)
    >>> a = [[1] * 8 + [0] * 8]  # one seed far worse than a, one far better: p .0078 each
    >>> mcnemar_levels(a, [[0] * 16, [1] * 16])
    McNemarResult(b=8, c=0, pvalue=1.0)
    """
    if not len(correct_a) or not len(correct_b):
        raise ValueError("each level needs the correctness of at least one seed.")
    tests = [mcnemar_exact(x, y) for x in correct_a for y in correct_b]
    worst = max(tests, key=lambda t: t.pvalue)
    if len({np.sign(t.b - t.c) for t in tests}) > 1:  # the pairs disagree on who is better
        return dataclasses.replace(worst, pvalue=1.0)
    return worst


def holm(pvalues: npt.ArrayLike) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries stay NaN and are not counted.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03, float("nan")]).round(3).tolist()
    [0.03, 0.06, 0.06, nan]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError("p-values must lie in [0, 1].")
    m = int(ok.sum())
    if not m:
        return out
    vals = p[ok]
    order = np.argsort(vals, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * vals[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    out[ok] = adjusted
    return out


@dataclasses.dataclass(frozen=True)
class SpearmanResult:
    """Spearman's rank correlation and its two-sided p-value over ``n`` pairs."""

    rho: float
    pvalue: float
    n: int


#: random orderings behind Spearman's p past :data:`EXACT_SPEARMAN_N` pairs (Monte-Carlo
#: standard error <= .0007 at p = .05; the smallest p is 1 / (this + 1))
SPEARMAN_PERMUTATIONS = 100_000
#: up to this many pairs, Spearman's p is exact (every ordering: 8! = 40,320)
EXACT_SPEARMAN_N = 8


def spearman(
    x: npt.ArrayLike, y: npt.ArrayLike, *, rng: np.random.Generator | None = None
) -> SpearmanResult:
    """Spearman's rho (average ranks for ties) with its two-sided permutation p-value.

    p is the share of orderings of ``y`` against ``x`` whose |rho| is at least the
    observed one: every ordering up to :data:`EXACT_SPEARMAN_N` pairs, else
    :data:`SPEARMAN_PERMUTATIONS` random ones drawn with ``rng`` (None: a generator
    seeded 0), counted as ``(k + 1) / (B + 1)`` (as scipy ``permutation_test``).
    scipy ``spearmanr``'s t approximation is too small over few runs and on the ties
    of a (p, seed) grid (rho = -1 over 4 runs gave p = 0, exactly 1/12; a perfect
    trend over 9 runs with p = 0 tied to aligned: 0 for an exact .0012).

    Warns
    -----
    DegenerateEffectWarning
        Fewer than 3 pairs or a constant variable: rho and p are NaN.

    Examples
    --------
    >>> round(spearman([0, 0.5, 1, 0, 0.5, 1], [0.8, 0.7, 0.5, 0.82, 0.69, 0.55]).rho, 4)
    -0.9562
    >>> spearman([0, 1, 2, 3], [4, 3, 2, 1]).pvalue  # 2 of the 24 orderings: 1/12, not 0
    0.08333333333333333
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"`x` and `y` must be 1-d of one length, got {x.shape} and {y.shape}.")
    n = len(x)
    rx, ry = (pd.Series(v).rank(method="average").to_numpy() for v in (x, y))  # as scipy rankdata
    if n < 3 or np.ptp(rx) == 0 or np.ptp(ry) == 0:
        warnings.warn(
            f"Spearman's rho is undefined for {n} pair(s) with a constant variable or n < 3: NaN.",
            DegenerateEffectWarning,
            stacklevel=2,
        )
        return SpearmanResult(rho=float("nan"), pvalue=float("nan"), n=n)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    scale = np.sqrt((rx @ rx) * (ry @ ry))
    rho = float(np.clip((rx @ ry) / scale, -1.0, 1.0))

    observed = abs(rho) - 1e-12  # an ordering as extreme, up to rounding, counts
    if n <= EXACT_SPEARMAN_N:  # rho of every ordering of y against x
        orders = np.array(list(itertools.permutations(range(n))))
        pvalue = float(np.mean(np.abs(ry[orders] @ rx) / scale >= observed))
    else:  # as scipy.stats.permutation_test, whose 0.5 s import every evaluation job spared
        gen = np.random.default_rng(0) if rng is None else rng
        hits = 0
        for start in range(0, SPEARMAN_PERMUTATIONS, 10_000):
            batch = np.tile(ry, (min(10_000, SPEARMAN_PERMUTATIONS - start), 1))
            gen.permuted(batch, axis=1, out=batch)
            hits += int(np.count_nonzero(np.abs(batch @ rx) / scale >= observed))
        pvalue = (hits + 1) / (SPEARMAN_PERMUTATIONS + 1)
    return SpearmanResult(rho=rho, pvalue=pvalue, n=n)


def seed_interval(values: npt.ArrayLike, *, confidence_level: float) -> tuple[float, float, float]:
    """Mean and t-interval over seeds: ``(mean, low, high)``; NaN bounds for one seed.

    Examples
    --------
    >>> [round(v, 4) for v in seed_interval([0.5, 0.6, 0.7], confidence_level=0.95)]
    [0.6, 0.3516, 0.8484]
    """
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if len(v) < 2:
        warnings.warn(
            "one seed only: no confidence interval over seeds (NaN).",
            DegenerateEffectWarning,
            stacklevel=2,
        )
        return mean, float("nan"), float("nan")
    half = (
        special.stdtrit(len(v) - 1, 1 - (1 - confidence_level) / 2)
        * v.std(ddof=1)
        / np.sqrt(len(v))
    )
    return mean, float(mean - half), float(mean + half)


# --- one (corpus, model): every table of the evaluation stage -------------------


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The evaluation tables of one (corpus, model).

    Attributes
    ----------
    metrics : pandas.DataFrame
        One row per (split, condition): uar, ci_low, ci_high, wa, n, n_speakers,
        n_classes (classes of the label set the split has: UAR's denominator) and
        absent_classes (the others, ``;``-joined), n_unparsed, unparsed_rate (``unparsed`` and ``error`` answers, both scored wrong),
        n_error (of them, ``error``: the model or its server failed, no answer),
        n_resamples, n_distinct_resamples, n_degenerate, kind, p, seed.
    confusion : pandas.DataFrame
        Long format, one row per (split, condition, true, pred): count, rate
        (row-normalised; ``pred`` = ``other`` collects answers outside the set).
    comparisons : pandas.DataFrame
        One row per compared pair (see :func:`evaluate`).
    corruption : pandas.DataFrame
        One row per (split, p): n_seeds, uar_mean, uar_sd, ci_low, ci_high (t
        over seeds), and the split's rho, rho_p, n_runs over all (p, seed) runs.
    """

    metrics: pd.DataFrame
    confusion: pd.DataFrame
    comparisons: pd.DataFrame
    corruption: pd.DataFrame


def _pairs(levels: Mapping[str, list[str]]) -> list[tuple[str, str, str]]:
    """Primary comparisons ``(a, b, family)`` with ``delta = UAR(a) - UAR(b)``."""
    perturbations = [
        lv for lv in levels if lv not in ("audio_only", "aligned") and lv != "corrupt_p0"
    ]
    pairs = []
    if "aligned" in levels and "audio_only" in levels:
        pairs.append(("aligned", "audio_only", "token_gain"))
    for lv in perturbations:
        if "aligned" in levels:
            pairs.append(("aligned", lv, "aligned_vs_perturbation"))
        if "audio_only" in levels:
            pairs.append((lv, "audio_only", "perturbation_vs_audio_only"))
    return pairs


def _evaluate_iv(
    predictions: Mapping[str, pd.DataFrame],
    manifest: pd.DataFrame,
    splits: Sequence[str],
    labels: Sequence[str],
) -> None:
    if not predictions:
        raise ValueError("no predictions to evaluate.")
    for col in ("utt_id", "speaker", "split", "label"):
        if col not in manifest.columns:
            raise ValueError(f"manifest lacks column {col!r}.")
    known = pd.Index(manifest["utt_id"])
    for name, frame in predictions.items():
        parse_condition(name)
        for col in ("utt_id", "pred", "parse_status"):
            if col not in frame.columns:
                raise ValueError(f"predictions of condition {name!r} lack column {col!r}.")
        # scored from pred, counted from parse_status: the two must agree (an edited or
        # foreign table scored an `unparsed` row right and counted it unparsed)
        failed = frame["parse_status"].isin(["unparsed", "error"]).to_numpy()
        pred = frame["pred"].fillna("").astype(str)
        labelled = pred.ne("").to_numpy()
        if (failed & labelled).any():
            row = frame[failed & labelled].iloc[0]
            raise ValueError(
                f"predictions of condition {name!r}: {int((failed & labelled).sum())} row(s) "
                f"of parse status unparsed/error carry a label, e.g. {row['utt_id']!r} "
                f"({row['parse_status']}, pred {row['pred']!r}); such an answer counts as "
                "wrong, so its pred must be empty."
            )
        # ... both ways: a parsed row whose pred is no label (a table parsed under another
        # label set) was scored wrong but not counted unparsed
        off = ~failed & ~pred.isin(list(labels)).to_numpy()
        if off.any():
            row = frame[off].iloc[0]
            raise ValueError(
                f"predictions of condition {name!r}: {int(off.sum())} parsed row(s) carry a "
                f"pred outside the label set {list(labels)}, e.g. {row['utt_id']!r} "
                f"({row['parse_status']}, pred {row['pred']!r}); were they parsed under "
                "another label set? Re-run the inference rules (`snakemake --forcerun "
                "query_audio_only query_token_conditions query_model_shard`): answers whose "
                "prompt is unchanged come from the journal, parsed again; a prompt that lists "
                "the labels is asked again."
            )
        _check_against_manifest(name, frame, manifest, known)
    if not splits:
        raise ValueError("`splits` is empty: name at least one split (or 'all').")


def _check_against_manifest(
    name: str, frame: pd.DataFrame, manifest: pd.DataFrame, known: pd.Index
) -> None:
    """A condition's predictions are of the manifest's utterances, with its split and label.

    Predictions of utterances the manifest lacks were ignored (a manifest with 9 test rows
    fewer gave n 22 for 31 and another UAR, exit code 0), and a prediction's copy of the
    split or label was never compared with the manifest's.
    """
    at = known.get_indexer(frame["utt_id"])
    if (at < 0).any():
        extra = frame.loc[at < 0, "utt_id"]
        raise ValueError(
            f"predictions of condition {name!r}: {len(extra)} utterance(s) the manifest lacks "
            f"({', '.join(map(repr, extra.head(5)))}): predictions and manifest are of "
            "different runs; re-run the inference rules on this manifest."
        )
    for col in ("split", "label"):
        if col in frame.columns:
            theirs = manifest[col].to_numpy()[at]
            differ = frame[col].astype(str).to_numpy() != theirs.astype(str)
            if differ.any():
                row = frame[differ].iloc[0]
                raise ValueError(
                    f"predictions of condition {name!r}: {int(differ.sum())} row(s) whose "
                    f"{col} is not the manifest's, e.g. {row['utt_id']!r} ({row[col]!r}, "
                    f"manifest {theirs[differ][0]!r}): predictions and manifest are of "
                    "different runs; re-run the inference rules on this manifest."
                )


def _split_rows(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    rows = manifest if split == "all" else manifest[manifest["split"] == split]
    if rows.empty:
        raise ValueError(f"the manifest has no utterance in split {split!r}.")
    return rows.sort_values("utt_id", kind="stable").reset_index(drop=True)


def _aligned_predictions(
    rows: pd.DataFrame, predictions: Mapping[str, pd.DataFrame], split: str
) -> dict[str, pd.DataFrame]:
    """Each condition's predictions in the order of ``rows``; every utterance present."""
    out = {}
    for name, frame in predictions.items():
        ids = pd.Index(frame["utt_id"])
        if not ids.is_unique:
            first = ", ".join(map(repr, ids[ids.duplicated()].unique()[:5]))
            raise ValueError(
                f"condition {name!r} has more than one prediction for utterance(s) {first}."
            )
        at = ids.get_indexer(rows["utt_id"])
        if (at < 0).any():
            missing = rows.loc[at < 0, "utt_id"]
            first = ", ".join(map(repr, missing.head(5)))
            raise ValueError(
                f"condition {name!r} has no prediction for {len(missing)} utterance(s) of split "
                f"{split!r}: {first}. Every evaluated utterance must reach every condition."
            )
        out[name] = frame[["pred", "parse_status"]].iloc[at].reset_index(drop=True)
    return out


def evaluate(
    predictions: Mapping[str, pd.DataFrame],
    manifest: pd.DataFrame,
    *,
    labels: Sequence[str],
    splits: Sequence[str],
    n_resamples: int,
    confidence_level: float,
    rng: np.random.Generator,
) -> Evaluation:
    """Metrics, confusions, paired comparisons and the corruption curve of one model.

    Parameters
    ----------
    predictions : mapping of condition name to pandas.DataFrame
        Columns utt_id, pred (``""`` when unparsed), parse_status.
    manifest : pandas.DataFrame
        Columns utt_id, speaker, split, label (the ground truth).
    labels : sequence of str
        The class set.
    splits : sequence of str
        Evaluated splits (``"all"`` = every utterance), each reported separately.
    n_resamples, confidence_level
        Speaker-clustered bootstrap settings; one set of resamples per split,
        shared by every condition (so differences are paired).
    rng : numpy.random.Generator
        Draws the speaker resamples, and (through a child generator, so the resamples
        do not depend on it) the orderings behind the corruption curve's Spearman p.

    Notes
    -----
    Comparisons (``comparisons``; ``delta = UAR(a) - UAR(b)``), role ``primary``:
    aligned vs audio_only; aligned vs each perturbation level; each
    perturbation level vs audio_only. A level pools the seeds of one
    intervention (``shuffle``, ``corrupt_p50``): its UAR is the mean over
    seeds (in each resample too, so the CI of delta is paired), and its McNemar
    test is the intersection-union test over its seeds (:func:`mcnemar_levels`:
    ``mcnemar_b``, ``mcnemar_c`` and ``p`` are the least significant seed's).
    ``corrupt_p0`` equals aligned by construction
    and is not tested. Holm runs over all primary rows of all splits (the
    (corpus, model) family). Rows with role ``per_seed`` repeat the tests for
    each seed of a multi-seed level, for consistency checks; they are outside
    the Holm family (``p_holm`` NaN).
    """
    _evaluate_iv(predictions, manifest, splits, labels)
    labels = list(labels)
    metrics, confusion, comparisons, corruption = [], [], [], []
    (orderings,) = rng.spawn(1)
    for split in splits:
        rows = _split_rows(manifest, split)
        preds = _aligned_predictions(rows, predictions, split)
        y_true = rows["label"].to_numpy(dtype=object)
        y_pred = {name: p["pred"].fillna("").to_numpy(dtype=object) for name, p in preds.items()}
        uar_score(y_true, y_true, labels=labels)  # warns once if a class is absent
        absent = [lab for lab in labels if lab not in set(y_true)]
        n_classes = len(labels) - len(absent)  # UAR's denominator in this split
        resamples = speaker_resamples(rows["speaker"], n_resamples=n_resamples, rng=rng)
        n_distinct = resamples.n_distinct
        rep = uar_replicates(y_true, y_pred, resamples, labels=labels)
        if rep.n_speakers < MIN_CI_SPEAKERS:
            warnings.warn(
                f"split {split!r} has {rep.n_speakers} speaker(s): {n_distinct} distinct "
                f"speaker resamples, so its CIs do not estimate between-speaker variation "
                f"(need {MIN_CI_SPEAKERS}+ speakers); McNemar is per utterance.",
                DegenerateEffectWarning,
                stacklevel=2,
            )
        for i, name in enumerate(rep.systems):
            kind, p, seed = parse_condition(name)
            low, high = percentile_ci(rep.replicates[i], confidence_level=confidence_level)
            n_unparsed = unparsed_count(preds[name]["parse_status"])
            metrics.append(
                {
                    "split": split,
                    "condition": name,
                    "kind": kind,
                    "p": np.nan if p is None else p,
                    "seed": -1 if seed is None else seed,
                    "uar": rep.estimate[i],
                    "ci_low": low,
                    "ci_high": high,
                    "wa": wa_score(y_true, y_pred[name], labels=labels),
                    "n": rep.n,
                    "n_speakers": rep.n_speakers,
                    "n_classes": n_classes,
                    "absent_classes": ";".join(absent),
                    "n_unparsed": n_unparsed,
                    "unparsed_rate": n_unparsed / rep.n,
                    "n_error": int((preds[name]["parse_status"] == "error").sum()),
                    "n_resamples": rep.n_resamples,
                    "n_distinct_resamples": n_distinct,
                    "n_degenerate": rep.n_degenerate,
                }
            )
            confusion.append(_confusion_long(split, name, y_true, y_pred[name], labels))
        comparisons += _comparison_rows(split, rep, y_true, y_pred, confidence_level)
        corruption += _corruption_rows(split, rep, confidence_level, orderings)
    comp = pd.DataFrame(comparisons, columns=_COMPARISON_COLUMNS)
    primary = comp["role"] == "primary"
    comp["p_holm"] = np.nan
    comp.loc[primary, "p_holm"] = holm(comp.loc[primary, "p"].to_numpy())
    return Evaluation(
        metrics=pd.DataFrame(metrics),
        confusion=pd.DataFrame(
            {col: np.concatenate([c[col] for c in confusion]) for col in _CONFUSION_COLUMNS}
        ),
        comparisons=comp,
        corruption=pd.DataFrame(corruption, columns=_CORRUPTION_COLUMNS),
    )


#: columns of :attr:`Evaluation.confusion`, in order
_CONFUSION_COLUMNS = ("split", "condition", "true", "pred", "count", "rate")


def _confusion_long(split, name, y_true, y_pred, labels) -> dict[str, np.ndarray]:
    """One condition's confusion as long columns: a row per (true, pred) cell, row-major
    (built as arrays and framed once for all conditions: a frame per condition cost
    ~15 ms of pandas overhead each, most of an evaluation job on a small corpus)."""
    counts = confusion_counts(y_true, y_pred, labels=labels)
    cells = counts.size
    return {
        "split": np.full(cells, split, dtype=object),
        "condition": np.full(cells, name, dtype=object),
        "true": np.repeat(np.asarray(counts.index, dtype=object), counts.shape[1]),
        "pred": np.tile(np.asarray(counts.columns, dtype=object), counts.shape[0]),
        "count": counts.to_numpy().ravel(),
        "rate": row_normalise(counts).to_numpy().ravel(),
    }


def uar_difference(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """``a - b`` of UARs (or of their bootstrap replicates), rounding noise set to 0.

    Examples
    --------
    >>> a = np.mean([0.1, 0.2, 0.3]); b = np.mean([0.3, 0.2, 0.1])
    >>> float(a - b) != 0.0, float(uar_difference(a, b))
    (True, 0.0)
    """
    diff = np.subtract(a, b, dtype=np.float64)
    return np.where(np.abs(diff) < UAR_TIE, 0.0, diff)


def _comparison_rows(
    split: str,
    rep: UARReplicates,
    y_true: np.ndarray,
    y_pred: Mapping[str, np.ndarray],
    confidence_level: float,
) -> list[dict]:
    levels = condition_levels(list(rep.systems))
    # (estimate, replicates, per-utterance correctness of each seed, n_seeds) of each
    # condition and level
    sides = {
        name: (rep.estimate[i], rep.replicates[i], [y_true == y_pred[name]], 1)
        for i, name in enumerate(rep.systems)
    }
    for lv, names in levels.items():
        if lv not in sides:  # a pooled level, even of a single seed (shuffle_s0 -> shuffle)
            sides[lv] = (
                float(np.mean([sides[c][0] for c in names])),
                np.mean([sides[c][1] for c in names], axis=0),
                [sides[c][2][0] for c in names],
                len(names),
            )
    out = []
    for a, b, family in _pairs(levels):
        tests = [(a, b, "primary")]
        # each seed of a multi-seed side, against the other side as a level
        tests += [(c, b, "per_seed") for c in levels[a] if len(levels[a]) > 1]
        tests += [(a, c, "per_seed") for c in levels[b] if len(levels[b]) > 1]
        for x, y, role in tests:
            est_x, reps_x, corr_x, n_x = sides[x]
            est_y, reps_y, corr_y, n_y = sides[y]
            low, high = percentile_ci(
                uar_difference(reps_x, reps_y), confidence_level=confidence_level
            )
            test = mcnemar_levels(corr_x, corr_y)
            out.append(
                {
                    "split": split,
                    "a": x,
                    "b": y,
                    "family": family,
                    "role": role,
                    "n_seeds_a": n_x,
                    "n_seeds_b": n_y,
                    "uar_a": est_x,
                    "uar_b": est_y,
                    "delta": float(uar_difference(est_x, est_y)),
                    "ci_low": low,
                    "ci_high": high,
                    "mcnemar_b": test.b,
                    "mcnemar_c": test.c,
                    "p": test.pvalue,
                    "n": rep.n,
                    "n_speakers": rep.n_speakers,
                    "n_resamples": rep.n_resamples,
                    "n_degenerate": rep.n_degenerate,
                }
            )
    return out


_COMPARISON_COLUMNS = [
    "split", "a", "b", "family", "role", "n_seeds_a", "n_seeds_b", "uar_a", "uar_b",
    "delta", "ci_low", "ci_high", "mcnemar_b", "mcnemar_c", "p", "n", "n_speakers",
    "n_resamples", "n_degenerate",
]  # fmt: skip
_CORRUPTION_COLUMNS = [
    "split", "p", "n_seeds", "uar_mean", "uar_sd", "ci_low", "ci_high", "rho", "rho_p", "n_runs",
]  # fmt: skip


def _corruption_rows(
    split: str, rep: UARReplicates, confidence_level: float, rng: np.random.Generator
) -> list[dict]:
    runs = [
        (parse_condition(name)[1], rep.estimate[i])
        for i, name in enumerate(rep.systems)
        if parse_condition(name)[0] == "corrupt"
    ]
    if not runs:
        return []
    ps = np.array([p for p, _ in runs])
    # equal UARs summed in another order differ by ~1e-16: ranked as they are, that noise
    # made a perfect "trend" out of a flat curve (rho -1, p .02, every mean UAR .500);
    # rounded where uar_difference calls two UARs equal, they tie
    uars = np.round([u for _, u in runs], UAR_DECIMALS)
    corr = spearman(ps, uars, rng=rng)
    out = []
    for p in np.unique(ps):
        vals = uars[ps == p]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateEffectWarning)
            mean, low, high = seed_interval(vals, confidence_level=confidence_level)
        out.append(
            {
                "split": split,
                "p": float(p),
                "n_seeds": len(vals),
                "uar_mean": mean,
                "uar_sd": float(vals.std(ddof=1)) if len(vals) > 1 else np.nan,
                "ci_low": low,
                "ci_high": high,
                "rho": corr.rho,
                "rho_p": corr.pvalue,
                "n_runs": corr.n,
            }
        )
    return out
