"""Figure 3: the token corruption curve, UAR against the corruption probability p.

Per evaluated split: the mean UAR over seeds at each p with its 95% t-interval
over seeds (the paper's "mean ± 95% CI across seeds"), and the aligned and
audio-only UARs as horizontal reference lines; Spearman's rho over all
(p, seed) runs in the legend.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cueprobe.figures import RC_PARAMS
from cueprobe.tables import ci_name
from cueprobe.tables import fmt_p
from cueprobe.tables import fmt_uar


def plot_corruption_curve(
    corruption: pd.DataFrame,
    metrics: pd.DataFrame,
    *,
    title: str,
    confidence_level: float = 0.95,
) -> Figure:
    """Figure 3 for one (corpus, model); one panel per split.

    Parameters
    ----------
    corruption : pandas.DataFrame
        The evaluation stage's corruption curve (split, p, uar_mean, ci_low,
        ci_high, rho, rho_p, n_runs).
    metrics : pandas.DataFrame
        Per-condition UARs (for the aligned and audio_only lines).
    title : str
    confidence_level : float, default: 0.95
        The evaluation's, which the curve's interval over seeds was computed at.
    """
    if corruption.empty:
        raise ValueError("the corruption table is empty: no corrupt_p*_s* condition was evaluated.")
    splits = list(dict.fromkeys(corruption["split"]))
    with matplotlib.rc_context(RC_PARAMS):
        fig = Figure(figsize=(3.4 * len(splits), 3.6), layout="constrained")
        axes = fig.subplots(1, len(splits), squeeze=False)[0]
        for ax, split in zip(axes, splits, strict=True):
            cur = corruption[corruption["split"] == split].sort_values("p")
            m = metrics[metrics["split"] == split].set_index("condition")["uar"]
            rho, p, n = cur["rho"].iloc[0], cur["rho_p"].iloc[0], int(cur["n_runs"].iloc[0])
            several = cur["n_seeds"].max() > 1  # one seed: no interval to draw
            label = "corrupt(p), " + (
                f"mean ± {ci_name(confidence_level)} over seeds" if several else "one seed (no CI)"
            )
            if not math.isnan(rho):
                label += f"\nSpearman ρ = {rho:+.2f}, p = {fmt_p(p)} ({n} runs)"
            x = cur["p"].to_numpy()
            ax.fill_between(x, cur["ci_low"], cur["ci_high"], color="C0", alpha=0.2, linewidth=0)
            ax.plot(x, cur["uar_mean"], "o-", color="C0", label=label)
            if "aligned" in m.index:
                same = "audio_only" in m.index and fmt_uar(m["aligned"]) == fmt_uar(m["audio_only"])
                ax.axhline(  # on top of the dotted line when equal: the legend says so
                    m["aligned"], color="C2", linestyle="--",
                    label=f"aligned ({m['aligned']:.3f})" + (", = audio-only" if same else ""),
                )  # fmt: skip
            if "audio_only" in m.index:
                ax.axhline(m["audio_only"], color="0.3", linestyle=":",
                           label=f"audio-only ({m['audio_only']:.3f})")  # fmt: skip
            ax.set_xlabel("corruption probability p")
            ax.set_ylabel("UAR")
            ax.set_xticks(x)
            ax.set_xlim(x.min() - 0.05, x.max() + 0.05)
            ax.set_title(f"split: {split}")
            ax.grid(alpha=0.3, linewidth=0.5)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=6.5, frameon=False)
            ymin = np.nanmin(
                [
                    cur["ci_low"].min(),
                    cur["uar_mean"].min(),
                    *m.reindex(["aligned", "audio_only"]).dropna(),
                ]
            )
            ymax = np.nanmax(
                [
                    cur["ci_high"].max(),
                    cur["uar_mean"].max(),
                    *m.reindex(["aligned", "audio_only"]).dropna(),
                ]
            )
            pad = max(0.02, 0.15 * (ymax - ymin))
            ax.set_ylim(ymin - pad, ymax + pad)
        fig.suptitle(title)
    return fig
