"""Point metrics of one set of predictions: UAR, WA, confusion, unparsed rate.

UAR (unweighted average recall) is the mean, over the ground-truth classes, of
the recall of each class. The label set is always passed explicitly: an answer
outside it (an unparsed answer is ``""``) counts as wrong and never adds a
class, unlike ``sklearn.metrics.balanced_accuracy_score``, which takes its
classes from ``y_true`` and ``y_pred`` together. A class of the label set that
is absent from ``y_true`` has no recall; it is left out of the mean with a
:class:`DegenerateEffectWarning` (scikit-learn would count it as recall 0).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

#: the column of the confusion table that collects answers outside the label set
OTHER = "other"

#: parse states that count as unparsed (never a label of the set)
UNPARSED_STATES = ("unparsed", "error")

#: below this many speakers, a split's speaker-clustered bootstrap CIs are flagged as not
#: estimating between-speaker variation (k speakers: C(2k - 1, k) distinct resamples;
#: 35 at k = 4, 126 at k = 5); see :mod:`cueprobe.stats`
MIN_CI_SPEAKERS = 5
#: two UARs closer than this are equal: the same class recalls summed in another order
#: differ by rounding alone (~1e-17); read as a difference, that noise put
#: "+0.00000000000000006" in Table II and could put a CI bound on either side of 0
UAR_DECIMALS = 12
UAR_TIE = 10.0**-UAR_DECIMALS


class DegenerateEffectWarning(RuntimeWarning):
    """A statistic is undefined or rests on fewer classes/seeds than asked for."""


def _labels_iv(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, labels: Sequence[str]):
    labels = list(labels)
    if not labels:
        raise ValueError("`labels` must name at least one class.")
    if len(set(labels)) != len(labels):
        raise ValueError(f"`labels` has duplicates: {labels}.")
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            "`y_true` and `y_pred` must be 1-d of one length, "
            f"got {y_true.shape} and {y_pred.shape}."
        )
    outside = ~np.isin(y_true, labels)
    if outside.any():
        bad = pd.Series(y_true[outside]).value_counts(dropna=False)
        first = ", ".join(f"{k!r} ({v})" for k, v in bad.head(5).items())
        raise ValueError(
            f"`y_true` has {int(bad.sum())} value(s) outside `labels` {labels}: {first}. "
            "The manifest label must be one of the corpus' classes."
        )
    return y_true, y_pred, labels


def class_counts(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class ``(n_correct, n_total)`` arrays, in the order of ``labels``.

    Examples
    --------
    >>> class_counts(["a", "a", "b"], ["a", "", "a"], labels=["a", "b"])
    (array([1, 0]), array([2, 1]))
    """
    y_true, y_pred, labels = _labels_iv(y_true, y_pred, labels)
    code = pd.Index(labels).get_indexer(y_true)
    k = len(labels)
    total = np.bincount(code, minlength=k)
    correct = np.bincount(code, weights=(y_true == y_pred), minlength=k).astype(np.int64)
    return correct, total


def uar_score(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, labels: Sequence[str]) -> float:
    """Unweighted average recall over the ground-truth classes of ``labels``.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Ground truth; every value must be in ``labels``.
    y_pred : array-like of shape (n,)
        Predictions; a value outside ``labels`` (e.g. ``""`` for unparsed) is wrong.
    labels : sequence of str
        The class set.

    Returns
    -------
    float
        Mean recall over the classes of ``labels`` present in ``y_true``; NaN
        when ``y_true`` is empty.

    Warns
    -----
    DegenerateEffectWarning
        When a class of ``labels`` is absent from ``y_true`` (it is left out).

    Examples
    --------
    >>> uar_score(["a", "a", "b", "b"], ["a", "", "b", "b"], labels=["a", "b"])
    0.75
    """
    correct, total = class_counts(y_true, y_pred, labels=labels)
    present = total > 0
    if not present.all():
        absent = [lab for lab, p in zip(labels, present, strict=True) if not p]
        if present.any():
            warnings.warn(
                f"class(es) {absent} absent from `y_true`: UAR averages over the "
                f"{int(present.sum())} present class(es).",
                DegenerateEffectWarning,
                stacklevel=2,
            )
        else:
            warnings.warn("`y_true` is empty: UAR is NaN.", DegenerateEffectWarning, stacklevel=2)
            return float("nan")
    return float(np.mean(correct[present] / total[present]))


def wa_score(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, labels: Sequence[str]) -> float:
    """Weighted accuracy (plain accuracy): the share of correct answers.

    Examples
    --------
    >>> wa_score(["a", "a", "b", "b"], ["a", "", "b", "b"], labels=["a", "b"])
    0.75
    """
    correct, total = class_counts(y_true, y_pred, labels=labels)
    return float(correct.sum() / total.sum()) if total.sum() else float("nan")


def confusion_counts(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, *, labels: Sequence[str]
) -> pd.DataFrame:
    """Counts: rows = ground truth (``labels``), columns = ``labels`` + ``other``.

    ``other`` collects every answer outside the label set (unparsed included),
    so that each row sums to its class size.

    Examples
    --------
    >>> confusion_counts(["a", "b"], ["b", "x"], labels=["a", "b"]).to_dict("split")["data"]
    [[0, 1, 0], [0, 0, 1]]
    """
    y_true, y_pred, labels = _labels_iv(y_true, y_pred, labels)
    k = len(labels)
    t = pd.Index(labels).get_indexer(y_true)
    p = pd.Index(labels).get_indexer(y_pred)
    p[p < 0] = k
    counts = np.bincount(t * (k + 1) + p, minlength=k * (k + 1)).reshape(k, k + 1)
    return pd.DataFrame(
        counts,
        index=pd.Index(labels, name="true"),
        columns=pd.Index([*labels, OTHER], name="pred"),
    )


def row_normalise(counts: pd.DataFrame) -> pd.DataFrame:
    """Divide each row by its sum (rows of an absent class stay NaN).

    Examples
    --------
    >>> row_normalise(pd.DataFrame([[1, 3], [0, 0]])).to_numpy().tolist()
    [[0.25, 0.75], [nan, nan]]
    """
    sums = counts.sum(axis=1).to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = counts.to_numpy(dtype=float) / sums[:, None]
    return pd.DataFrame(rates, index=counts.index, columns=counts.columns)


def unparsed_count(parse_status: npt.ArrayLike) -> int:
    """How many answers could not be mapped to a label (``unparsed`` or ``error``).

    Examples
    --------
    >>> unparsed_count(["exact", "unparsed", "error", "synonym"])
    2
    """
    return int(np.isin(np.asarray(parse_status, dtype=object), UNPARSED_STATES).sum())
