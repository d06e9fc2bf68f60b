"""Figure 2: row-normalised confusion matrices under the token interventions.

Panels (columns): aligned, shuffle (seeds pooled), conflict, and the most corrupted
level of the grid (its highest p > 0, seeds pooled: p = 1 in the paper's grid), those
present; one row of panels per evaluated split. Rows = ground truth, columns =
prediction, each row sums to 1 (a class absent from a split is a blank row); cells
below .01 are not annotated. Answers outside the label set (unparsed) get an ``other``
column when there are any.

Pooling the counts of the seeds of one intervention and then normalising each
row equals the mean of the per-seed row-normalised matrices, since every seed
has the same utterances.

Figures are built without pyplot (no global state) under
:data:`cueprobe.figures.RC_PARAMS` and saved with :func:`cueprobe.figures.save_figure`,
so that the files carry no time stamps and regenerate byte-identically.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cueprobe.figures import PAGE_WIDTH_IN
from cueprobe.figures import RC_PARAMS
from cueprobe.interventions import condition_levels
from cueprobe.interventions import corrupt_level
from cueprobe.metrics import OTHER
from cueprobe.tables import fmt_uar

#: the panels of Figure 2 before the corruption one: (level, title)
PANELS: tuple[tuple[str, str], ...] = (
    ("aligned", "aligned"),
    ("shuffle", "shuffle"),
    ("conflict", "conflict"),
)


def figure2_panels(levels: Sequence[str], corrupt_p: Sequence[float]) -> list[tuple[str, str]]:
    """The panels of the evaluated ``levels``: :data:`PANELS` present, then the most
    corrupted level (the highest of the evaluated ``corrupt_p`` above 0; a grid without
    p = 1 still gets one).

    Examples
    --------
    >>> figure2_panels(["aligned", "conflict", "corrupt_p0", "corrupt_p50"], [0.0, 0.5, 0.0])
    [('aligned', 'aligned'), ('conflict', 'conflict'), ('corrupt_p50', 'corrupt p=0.5')]
    """
    panels = [(lv, name) for lv, name in PANELS if lv in levels]
    if len(corrupt_p) and max(corrupt_p) > 0:
        panels.append((corrupt_level(max(corrupt_p)), f"corrupt p={max(corrupt_p):g}"))
    return panels


def pooled_rates(confusion: pd.DataFrame, split: str, conditions: Sequence[str]) -> pd.DataFrame:
    """Row-normalised matrix of the summed counts of ``conditions`` on ``split``."""
    sub = confusion[(confusion["split"] == split) & confusion["condition"].isin(conditions)]
    if sub.empty:
        raise ValueError(f"no confusion counts for {list(conditions)} on split {split!r}.")
    counts = sub.pivot_table(
        index="true", columns="pred", values="count", aggfunc="sum", sort=False
    )
    sums = counts.sum(axis=1)
    return counts.div(sums.where(sums > 0), axis=0)


def plot_confusions(
    confusion: pd.DataFrame, metrics: pd.DataFrame, *, title: str, threshold: float = 0.01
) -> Figure:
    """Figure 2 for one (corpus, model).

    Parameters
    ----------
    confusion, metrics : pandas.DataFrame
        The evaluation stage's tables (long confusion counts; per-condition UAR).
    title : str
    threshold : float, default: 0.01
        Cells below it are left unannotated.
    """
    splits = list(dict.fromkeys(metrics["split"]))
    levels = condition_levels(list(dict.fromkeys(metrics["condition"])))
    panels = figure2_panels(list(levels), metrics.loc[metrics["kind"] == "corrupt", "p"].tolist())
    if not panels:
        raise ValueError(
            f"none of the Figure 2 conditions {[p for p, _ in PANELS]} or a corruption with "
            f"p > 0 was evaluated; have {sorted(levels)}."
        )
    labels = list(dict.fromkeys(confusion["true"]))
    show_other = (
        confusion[(confusion["pred"] == OTHER) & confusion["condition"].isin(
            [c for lv, _ in panels for c in levels[lv]]
        )]["count"].sum() > 0
    )  # fmt: skip
    cols = labels + ([OTHER] if show_other else [])
    with matplotlib.rc_context(RC_PARAMS):
        # no wider than an IEEE page (a figure* shrunk to fit printed its 6.5 pt cells at
        # 5.5), unless its classes need more: ~0.21 in a column keeps ".19" from ".16"
        panel = max(min(1.9, (PAGE_WIDTH_IN - 0.8) / len(panels)), 0.21 * len(cols))
        fig = Figure(
            figsize=(panel * len(panels) + 0.8, 2.3 * len(splits) + 1.0), layout="constrained"
        )
        axes = np.atleast_2d(fig.subplots(len(splits), len(panels), squeeze=False))
        image = None
        for i, split in enumerate(splits):
            m = metrics[metrics["split"] == split].set_index("condition")["uar"]
            for j, (lv, name) in enumerate(panels):
                ax = axes[i, j]
                rates = pooled_rates(confusion, split, levels[lv]).reindex(
                    index=labels, columns=cols
                )
                # a class absent from the split: a blank row, not one of zeros
                values = rates.fillna(0.0).to_numpy()
                absent = np.broadcast_to(rates.isna().all(axis=1).to_numpy()[:, None], values.shape)
                image = ax.imshow(
                    np.ma.masked_array(values, absent), vmin=0.0, vmax=1.0, cmap="Blues",
                    aspect="equal",
                )  # fmt: skip
                for (r, c), v in np.ndenumerate(values):
                    if v >= threshold:
                        ax.text(c, r, f"{v:.2f}".lstrip("0"), ha="center", va="center",
                                color="white" if v > 0.6 else "black", fontsize=6.5)  # fmt: skip
                uar = float(np.mean([m[c] for c in levels[lv]]))
                # two single-line texts, not one two-line title: see figure_bytes on ligatures
                ax.set_title(name, pad=14)
                ax.annotate(
                    f"UAR {fmt_uar(uar)}" + (f" ({split})" if len(splits) > 1 else ""),
                    (0.5, 1.0),
                    xycoords="axes fraction",
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                )
                ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
                ax.set_yticks(range(len(labels)), labels if j == 0 else [""] * len(labels))
                if i == len(splits) - 1:
                    ax.set_xlabel("predicted")
                if j == 0:
                    ax.set_ylabel("true")
        fig.colorbar(image, ax=axes, shrink=0.8, label="row-normalised rate")
        fig.suptitle(title)
    return fig
