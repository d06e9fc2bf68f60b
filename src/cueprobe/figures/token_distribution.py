"""Figure 1: concept-token distributions per emotion (bubble area = within-emotion frequency)."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cueprobe.define import Concept
from cueprobe.figures import PAGE_WIDTH_IN
from cueprobe.figures import RC_PARAMS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def token_frequencies(
    tokens: pd.DataFrame,
    manifest: pd.DataFrame,
    *,
    vocabularies: Mapping[str, Sequence[str]],
    labels: Sequence[str],
) -> pd.DataFrame:
    """Within-emotion frequency of every token value of every concept, over the
    utterances where that concept was measured.

    A token filled in for want of a measurement (the middle level of a NaN score, the
    VOICE_QUALITY of a file that was not analysed: :func:`cueprobe.tokens.measured_tokens`)
    is not counted: unvoiced and too-short clips would otherwise inflate the middle
    bubbles, which are the figure's evidence that tokens separate emotions.

    Returns
    -------
    DataFrame
        ``concept, value, label, count, n_label, n_filled, freq`` with one row per
        (concept, vocabulary value, label), zeros included; ``n_label`` counts the
        label's utterances measured for the concept, ``n_filled`` those left out;
        ``freq = count / n_label`` sums to 1 over the values of a concept within a label.
    """
    from cueprobe.tokens import measured_tokens

    missing = [c for c in vocabularies if c not in tokens.columns]
    if missing:
        raise ValueError(f"tokens table lacks concept column(s) {missing}.")
    df = tokens.merge(
        manifest[["utt_id", "label"]], on="utt_id", how="inner", validate="one_to_one"
    )
    if len(df) != len(tokens):
        raise ValueError(f"{len(tokens) - len(df)} token row(s) have no manifest label.")
    unknown = sorted(set(df["label"]) - set(labels))
    if unknown:
        raise ValueError(f"labels {unknown} are not in the label set {list(labels)}.")
    rows = []
    measured = measured_tokens(df)
    n_all = df["label"].value_counts()
    for concept, vocab in vocabularies.items():
        outside = sorted(set(df[concept]) - set(vocab))
        if outside:
            raise ValueError(f"{concept} values {outside} are not in its vocabulary {list(vocab)}.")
        kept = df[measured[concept].to_numpy()]
        counts = kept.groupby(["label", concept]).size()
        n_label = kept["label"].value_counts()
        for label in labels:
            n = int(n_label.get(label, 0))
            filled = int(n_all.get(label, 0)) - n
            for value in vocab:
                c = int(counts.get((label, value), 0))
                rows.append((concept, value, label, c, n, filled, c / n if n else np.nan))
    columns = ["concept", "value", "label", "count", "n_label", "n_filled", "freq"]
    return pd.DataFrame(rows, columns=columns)


def plot_token_distribution(freqs: pd.DataFrame, *, title: str) -> Figure:
    """Bubble chart: one panel per concept (rows), token values (x) x emotions (y).

    Bubble area is proportional to the within-emotion frequency; values of 5 %
    and above are printed beside the bubble. The figure is as wide as an IEEE page
    (:data:`PAGE_WIDTH_IN`), so its 7-8 pt text prints at that size in a
    ``figure*``; one face and weight throughout (a bold one was a second
    embedded font, ~0.2 s a PDF).
    """
    import matplotlib

    # drawn under the fixed style, as Figures 2 and 3: a user's matplotlibrc set its font
    with matplotlib.rc_context(RC_PARAMS):
        return _draw(freqs, _heading(freqs, title))


def _heading(freqs: pd.DataFrame, title: str) -> list[str]:
    """Figure 1's heading lines: title, what is drawn, n per emotion, what was left out."""
    labels = list(dict.fromkeys(freqs["label"]))
    first = freqs.drop_duplicates(["concept", "label"])
    n = (first["n_label"] + first["n_filled"]).groupby(first["label"]).max()
    filled = first.groupby("concept", sort=False)["n_filled"].sum()
    heading = [
        title,
        "within-emotion frequency (%) of the measured tokens, bubble area proportional",
        ", ".join(f"{lab} n={int(n[lab])}" for lab in labels),
    ]
    if filled.any():
        note = ", ".join(f"{c} {int(k)}" for c, k in filled.items() if k)
        heading.append(f"not counted, no measurement (token filled in): {note}")
    return heading


def _draw(freqs: pd.DataFrame, heading: list[str]) -> Figure:
    import matplotlib
    from matplotlib.figure import Figure

    concepts = list(dict.fromkeys(freqs["concept"]))
    labels = list(dict.fromkeys(freqs["label"]))
    n_values = max(freqs.groupby("concept")["value"].nunique())
    pitch = 0.2  # inches between emotions, and the largest bubble's diameter
    x_pitch = (PAGE_WIDTH_IN - 1.0) / n_values  # ~1 in of emotion names on the left
    max_area = (72 * 0.95 * min(pitch, x_pitch)) ** 2  # points^2 at frequency 1
    colours = matplotlib.colormaps["tab10"](np.arange(len(labels)) % 10)
    # numbers beside the bubbles, past the largest one: inside, a 6 pt number covered
    # every bubble of 25 % or less (most of them), and the area could not be compared
    beside = np.sqrt(max_area) / 2 + 1.5  # points right of the bubble's centre
    fig = Figure(  # ~0.14 in a heading line at 8 pt
        figsize=(
            PAGE_WIDTH_IN,
            len(concepts) * (pitch * len(labels) + 0.45) + 0.17 + 0.14 * len(heading),
        ),
        layout="tight",
    )
    axes = fig.subplots(len(concepts), 1, squeeze=False)
    for ax, concept in zip(axes[:, 0], concepts, strict=True):
        sub = freqs[freqs["concept"] == concept]
        values = list(dict.fromkeys(sub["value"]))
        for j, label in enumerate(labels):
            row = sub[sub["label"] == label].set_index("value").reindex(values)
            f = row["freq"].fillna(0).to_numpy()
            y = len(labels) - 1 - j
            ax.scatter(
                np.arange(len(values)),
                np.full(len(values), y),
                s=max_area * f,
                color=colours[j],
                alpha=0.75,
                edgecolors="none",
            )
            for x, fx in enumerate(f):
                if fx >= 0.05:
                    ax.annotate(
                        f"{100 * fx:.0f}", (x, y), xytext=(beside, 0), textcoords="offset points",
                        ha="left", va="center", fontsize=6,
                    )  # fmt: skip
        ax.set_xticks(np.arange(len(values)), [v.replace("_", " ") for v in values], fontsize=7)
        ax.set_yticks(np.arange(len(labels)), labels[::-1], fontsize=7)
        ax.set_xlim(-0.5, len(values) - 0.5)  # each panel spans its own values
        ax.set_ylim(-0.6, len(labels) - 0.4)
        ax.set_title(concept, loc="left", fontsize=8, pad=2)
        ax.tick_params(length=2, pad=2)
        ax.grid(True, color="0.92", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    fig.suptitle("\n".join(heading), fontsize=8)
    return fig


def vocabularies(n_bins: int) -> dict[str, list[str]]:
    """Token values of every concept, lowest first (VOICE_QUALITY in rule order)."""
    from cueprobe.define import ORDINAL_CONCEPTS
    from cueprobe.define import VoiceQuality
    from cueprobe.define import level_names

    out = {c.value: level_names(c, n_bins) for c in ORDINAL_CONCEPTS}
    out[Concept.VOICE_QUALITY.value] = [
        v.value
        for v in (
            VoiceQuality.MODAL,
            VoiceQuality.BREATHY,
            VoiceQuality.PRESSED,
            VoiceQuality.ROUGH,
            VoiceQuality.CREAKY,
            VoiceQuality.UNVOICED,
        )
    ]
    return out
