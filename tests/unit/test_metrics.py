"""Point metrics against scikit-learn, and the label-set rules of UAR."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score
from sklearn.metrics import confusion_matrix
from sklearn.metrics import recall_score

from cueprobe.metrics import OTHER
from cueprobe.metrics import DegenerateEffectWarning
from cueprobe.metrics import class_counts
from cueprobe.metrics import confusion_counts
from cueprobe.metrics import row_normalise
from cueprobe.metrics import uar_score
from cueprobe.metrics import unparsed_count
from cueprobe.metrics import wa_score

LABELS = ["angry", "happy", "neutral", "sad"]


@pytest.mark.parametrize("seed", range(20))
def test_uar_equals_sklearn_macro_recall_with_explicit_labels(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 400))
    y_true = rng.choice(LABELS, size=n)
    y_true[:4] = LABELS  # every class present
    # out-of-set answers ("" unparsed, "calm") must be wrong and never add a class
    y_pred = rng.choice([*LABELS, "", "calm"], size=n)
    want = recall_score(y_true, y_pred, average="macro", labels=LABELS, zero_division=0)
    assert uar_score(y_true, y_pred, labels=LABELS) == pytest.approx(want, abs=1e-9)
    assert wa_score(y_true, y_pred, labels=LABELS) == pytest.approx(
        accuracy_score(y_true, y_pred), abs=1e-12
    )


def test_out_of_set_answer_does_not_add_a_class():
    y_true = ["angry", "sad"]
    y_pred = ["angry", "calm"]
    # balanced_accuracy-style class sets would average over {angry, sad, calm}
    assert uar_score(y_true, y_pred, labels=LABELS[::3]) == 0.5


def test_uar_ignores_row_order_and_is_one_when_perfect():
    y = np.array(LABELS * 3)
    assert uar_score(y, y, labels=LABELS) == 1.0
    perm = np.random.default_rng(0).permutation(len(y))
    pred = np.roll(y, 1)
    assert uar_score(y[perm], pred[perm], labels=LABELS) == uar_score(y, pred, labels=LABELS)


def test_absent_class_is_left_out_with_a_warning():
    with pytest.warns(DegenerateEffectWarning, match=r"class\(es\) \['sad'\] absent from `y_true`"):
        assert (
            uar_score(["angry", "happy"], ["angry", "sad"], labels=["angry", "happy", "sad"]) == 0.5
        )


def test_empty_y_true_gives_nan_with_a_warning():
    with pytest.warns(DegenerateEffectWarning, match="`y_true` is empty: UAR is NaN"):
        assert np.isnan(uar_score([], [], labels=LABELS))
    assert np.isnan(wa_score([], [], labels=LABELS))


@pytest.mark.parametrize(
    ("y_true", "y_pred", "labels", "message"),
    [
        (["angry"], ["angry"], [], "`labels` must name at least one class"),
        (["angry"], ["angry"], ["angry", "angry"], "`labels` has duplicates"),
        (["angry"], ["angry", "sad"], LABELS, "must be 1-d of one length"),
        (
            ["calm", "calm", "angry"],
            ["a", "b", "c"],
            LABELS,
            r"2 value\(s\) outside `labels`.*'calm' \(2\)",
        ),
        (["angry", None], ["a", "b"], LABELS, r"1 value\(s\) outside `labels`.*: None \(1\)"),
    ],
)
def test_input_errors(y_true, y_pred, labels, message):
    with pytest.raises(ValueError, match=message):
        uar_score(y_true, y_pred, labels=labels)


def test_confusion_matches_sklearn_and_other_column_collects_out_of_set():
    rng = np.random.default_rng(3)
    y_true = rng.choice(LABELS, size=300)
    y_pred = rng.choice([*LABELS, ""], size=300)
    counts = confusion_counts(y_true, y_pred, labels=LABELS)
    assert list(counts.columns) == [*LABELS, OTHER]
    want = confusion_matrix(y_true, y_pred, labels=LABELS)
    np.testing.assert_array_equal(counts[LABELS].to_numpy(), want)
    np.testing.assert_array_equal(
        counts[OTHER].to_numpy(), [((y_true == c) & (y_pred == "")).sum() for c in LABELS]
    )
    rates = row_normalise(counts)
    np.testing.assert_allclose(rates.sum(axis=1), 1.0)
    correct, total = class_counts(y_true, y_pred, labels=LABELS)
    np.testing.assert_array_equal(correct, np.diag(want))
    np.testing.assert_array_equal(total, counts.sum(axis=1))


def test_unparsed_count_counts_unparsed_and_error():
    assert unparsed_count(["exact", "unparsed", "mention", "error", "synonym"]) == 2
