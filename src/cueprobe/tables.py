"""The paper's Tables II (Aibo-style: dev/test) and III (IEMOCAP-style) as data and text.

A table is first a :class:`pandas.DataFrame` (one row per corpus x model, plus
quoted literature rows), written as CSV; :func:`to_markdown` and
:func:`to_latex` render the same rows in the paper's layout. UAR^- is the
``audio_only`` condition, UAR^+ ``aligned``, delta = UAR^+ - UAR^- with the
paired speaker-clustered bootstrap CI and the exact McNemar p (raw and Holm)
from the evaluation stage.

Paper values (config ``tables.paper``) are keyed by the model's ``paper_row``
and then by ``table2_{dev,test}_uar_{minus,plus}`` or ``table3_uar_{minus,plus}``;
they stand beside the rows of the paper's own corpus only (``paper_corpora``: a
corpus read from a CSV sheet beside IEMOCAP in Table III gets none). A quoted
literature row names the corpus its UAR is on (config ``corpus``, default the
paper's: :data:`PAPER_CORPUS`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cueprobe.metrics import MIN_CI_SPEAKERS
from cueprobe.metrics import UAR_TIE

#: row groups, in print order
GROUPS = {
    "zero_shot": "Zero-shot models",
    "trained": "Trained models (scored on held-out splits)",
    "quoted": "Quoted references (not run here)",
}

TABLE2_SPLITS = ("dev", "test")

#: the corpus of each of the paper's tables: its reported and quoted values are on it
PAPER_CORPUS = {"II": "FAU-Aibo", "III": "IEMOCAP"}
#: the adapter that reads that corpus: only its corpora get the paper's values (a CSV
#: sheet's or a demo's do not)
PAPER_ADAPTER = {"II": "aibo", "III": "iemocap"}


def _gain_rows(metrics: pd.DataFrame, comparisons: pd.DataFrame) -> pd.DataFrame:
    """UAR^-, UAR^+, delta per (corpus, model, split) from the evaluation tables."""
    need = {"corpus", "model", "split", "condition", "uar", "ci_low", "ci_high", "n_speakers"}
    missing = sorted(need - set(metrics.columns))
    if missing:
        raise ValueError(f"metrics table lacks column(s) {missing}.")
    need = {"corpus", "model", "split", "a", "b", "role", "delta", "ci_low", "ci_high", "p"}
    missing = sorted(need - set(comparisons.columns))
    if missing:
        raise ValueError(f"comparisons table lacks column(s) {missing}.")
    keys = ["corpus", "model", "split"]
    if "absent_classes" not in metrics:  # metrics written before it was recorded
        metrics = metrics.assign(absent_classes="")
    m = metrics.set_index([*keys, "condition"])[
        ["uar", "ci_low", "ci_high", "n", "n_speakers", "absent_classes"]
    ]
    condition = m.index.get_level_values("condition")
    minus = m[condition == "audio_only"].droplevel("condition").add_prefix("uar_minus_")
    plus = m[condition == "aligned"].droplevel("condition").add_prefix("uar_plus_")
    gain = comparisons[
        (comparisons["a"] == "aligned")
        & (comparisons["b"] == "audio_only")
        & (comparisons["role"] == "primary")
    ].set_index(keys)[["delta", "ci_low", "ci_high", "p", "p_holm"]]
    gain.columns = ["delta", "delta_ci_low", "delta_ci_high", "p", "p_holm"]
    out = minus.join(plus, how="outer").join(gain, how="left")
    # utterances and speakers scored: audio_only's, else aligned's (a model run with
    # token conditions only still has its n and its few-speaker mark)
    for col in ("n", "n_speakers", "absent_classes"):
        out[f"uar_minus_{col}"] = out[f"uar_minus_{col}"].fillna(out[f"uar_plus_{col}"])
    out = out.rename(
        columns={
            "uar_minus_uar": "uar_minus",
            "uar_plus_uar": "uar_plus",
            "uar_minus_n": "n",
            "uar_minus_n_speakers": "n_speakers",
            "uar_minus_absent_classes": "absent_classes",
        }
    ).drop(columns=["uar_plus_n", "uar_plus_n_speakers", "uar_plus_absent_classes"])
    return out.reset_index()


def _model_info(models: Mapping[str, Mapping[str, Any]], model: str) -> dict[str, Any]:
    if model not in models:
        raise ValueError(
            f"model {model!r} of the evaluation tables is not in `models` {sorted(models)}."
        )
    info = models[model]
    return {
        "label": info.get("label") or model,
        "paper_row": info.get("paper_row"),
        # config `group` names a heading of its own (the paper's "Fine-tuned ALMs")
        "group": info.get("group") or ("zero_shot" if info.get("zero_shot", True) else "trained"),
        "rank": list(models).index(model),  # rows follow the config's model order
    }


def group_heading(group: str) -> str:
    """The heading of a table group: a built-in group's words, else the config's own.

    Examples
    --------
    >>> group_heading("zero_shot"), group_heading("Fine-tuned ALMs")
    ('Zero-shot models', 'Fine-tuned ALMs')
    """
    return GROUPS.get(group, group)


def _paper_value(paper: Mapping[str, Mapping[str, float]], row: str | None, key: str) -> float:
    if row is None:
        return float("nan")
    return float(paper.get(row, {}).get(key, float("nan")))


def _paper_rows(rows: pd.DataFrame, paper_corpora: Collection[str] | None) -> pd.Series:
    """Each row's ``paper_row``, or None where its corpus is not the paper's."""
    if paper_corpora is None:
        return rows["paper_row"]
    return rows["paper_row"].where(rows["corpus"].isin(list(paper_corpora)), None)


def _quoted_row(ref: Mapping[str, Any], table: str) -> dict[str, Any]:
    """The columns a quoted literature row shares in both tables."""
    return {
        "corpus": "", "model": "", "label": ref["name"], "group": "quoted", "rank": -1,
        "quoted": True, "source": ref["source"], "paper_row": None,
        "quoted_on": ref.get("corpus") or PAPER_CORPUS[table],
    }  # fmt: skip


def _order(df: pd.DataFrame) -> pd.DataFrame:
    """Groups as the paper has them (zero-shot, the config's own groups in the order
    their models come, trained, quoted); within a group, corpus then config order."""
    own = [g for g in dict.fromkeys(df.sort_values("rank")["group"]) if g not in GROUPS]
    rank = {g: i for i, g in enumerate(["zero_shot", *own, "trained", "quoted"])}
    df = df.assign(_g=df["group"].map(rank))
    return (
        df.sort_values(["_g", "corpus", "rank"], kind="stable")
        .drop(columns=["_g", "rank"])
        .reset_index(drop=True)
    )


def table2(
    metrics: pd.DataFrame,
    comparisons: pd.DataFrame,
    *,
    models: Mapping[str, Mapping[str, Any]],
    literature: Sequence[Mapping[str, Any]] = (),
    paper: Mapping[str, Mapping[str, float]] | None = None,
    paper_corpora: Collection[str] | None = None,
) -> pd.DataFrame:
    """Table II: dev and test UAR^-, UAR^+, delta per (corpus, model).

    Parameters
    ----------
    metrics, comparisons : pandas.DataFrame
        The evaluation stage's tables of every (corpus, model) in the table,
        with ``corpus`` and ``model`` columns.
    models : mapping
        Per model: ``label``, ``paper_row``, ``zero_shot`` (config ``models``).
    literature : sequence of mapping
        Config ``tables.literature``; rows with ``table: II`` are added, quoted, with
        the corpus they are on in ``quoted_on`` (their ``corpus``, else FAU-Aibo).
    paper : mapping, optional
        Config ``tables.paper``; adds ``*_paper`` columns when any model has a
        ``paper_row``.
    paper_corpora : collection of str, optional
        The corpora that are the paper's own (FAU-Aibo here, IEMOCAP in Table III):
        only their rows get the paper's values. None: every corpus of the table.

    Returns
    -------
    pandas.DataFrame
        Columns corpus, model, label, group, quoted, source, then per split
        ``{split}_uar_minus``, ``_uar_plus``, ``_delta``, ``_delta_ci_low``,
        ``_delta_ci_high``, ``_p``, ``_p_holm``, ``_n``, ``_n_speakers`` (NaN where a
        model is not scored on that split), ``_absent_classes`` (classes of the label set
        the split lacks, ``;``-joined: its UARs average the others), and the paper columns.
    """
    paper = paper or {}
    gains = _gain_rows(metrics, comparisons)
    rows = []
    for (corpus, model), frame in gains.groupby(["corpus", "model"], sort=True):
        info = _model_info(models, model)
        row = {"corpus": corpus, "model": model, "label": info["label"], "group": info["group"]}
        row["rank"] = info["rank"]
        row |= {"quoted": False, "source": ""}
        by_split = frame.set_index("split")
        for split in TABLE2_SPLITS:
            have = split in by_split.index
            for col in ("uar_minus", "uar_plus", "delta", "delta_ci_low", "delta_ci_high", "p"):
                row[f"{split}_{col}"] = by_split.at[split, col] if have else np.nan
            row[f"{split}_p_holm"] = by_split.at[split, "p_holm"] if have else np.nan
            row[f"{split}_n"] = by_split.at[split, "n"] if have else np.nan
            row[f"{split}_n_speakers"] = by_split.at[split, "n_speakers"] if have else np.nan
            row[f"{split}_absent_classes"] = by_split.at[split, "absent_classes"] if have else ""
        row["paper_row"] = info["paper_row"]
        rows.append(row)
    for ref in literature:
        if ref.get("table") != "II":
            continue
        split = ref.get("split", "test")
        if split not in TABLE2_SPLITS:
            raise ValueError(
                f"literature row {ref['name']!r} of Table II has split {split!r}; "
                f"one of {TABLE2_SPLITS}."
            )
        row = _quoted_row(ref, "II")
        row[f"{split}_uar_minus"] = ref["uar"]
        rows.append(row)
    out = pd.DataFrame(rows)
    cols = ["corpus", "model", "label", "group", "quoted", "source"]
    cols += [
        f"{split}_{c}"
        for split in TABLE2_SPLITS
        for c in (
            "uar_minus", "uar_plus", "delta", "delta_ci_low", "delta_ci_high", "p", "p_holm", "n",
            "n_speakers", "absent_classes",
        )
    ]  # fmt: skip
    out = out.reindex(columns=[*cols, "quoted_on", "rank", "paper_row"])
    out["paper_row"] = _paper_rows(out, paper_corpora)
    if out["paper_row"].notna().any():
        for split in TABLE2_SPLITS:
            for c in ("uar_minus", "uar_plus"):
                out[f"{split}_{c}_paper"] = [
                    _paper_value(paper, r, f"table2_{split}_{c}") for r in out["paper_row"]
                ]
            out[f"{split}_delta_paper"] = (
                out[f"{split}_uar_plus_paper"] - out[f"{split}_uar_minus_paper"]
            )
    return _order(out.drop(columns="paper_row"))


def table3(
    metrics: pd.DataFrame,
    comparisons: pd.DataFrame,
    *,
    models: Mapping[str, Mapping[str, Any]],
    literature: Sequence[Mapping[str, Any]] = (),
    paper: Mapping[str, Mapping[str, float]] | None = None,
    paper_corpora: Collection[str] | None = None,
) -> pd.DataFrame:
    """Table III: UAR^-, UAR^+, delta with 95% CIs and p per (corpus, model).

    Each model is reported on its evaluated split (``all`` for zero-shot
    models, ``test`` for trained ones; column ``split``). Literature rows with
    ``table: III`` are added as quoted, with their UAR in ``uar_minus`` (no
    tokens) and their corpus in ``quoted_on`` (their ``corpus``, else IEMOCAP).
    Parameters as in :func:`table2`.
    """
    paper = paper or {}
    gains = _gain_rows(metrics, comparisons)
    rows = []
    for rec in gains.sort_values(["corpus", "model", "split"]).to_dict("records"):
        info = _model_info(models, rec["model"])
        rows.append(
            rec
            | {"label": info["label"], "group": info["group"], "rank": info["rank"]}
            | {"quoted": False, "source": ""}
            | {"paper_row": info["paper_row"]}
        )  # fmt: skip
    for ref in literature:
        if ref.get("table") != "III":
            continue
        rows.append(
            _quoted_row(ref, "III") | {"split": ref.get("split", ""), "uar_minus": ref["uar"]}
        )
    cols = [
        "corpus", "model", "label", "group", "quoted", "source", "split", "n", "n_speakers",
        "absent_classes", "uar_minus", "uar_minus_ci_low", "uar_minus_ci_high",
        "uar_plus", "uar_plus_ci_low", "uar_plus_ci_high",
        "delta", "delta_ci_low", "delta_ci_high", "p", "p_holm",
    ]  # fmt: skip
    out = pd.DataFrame(rows).reindex(columns=[*cols, "quoted_on", "rank", "paper_row"])
    out["paper_row"] = _paper_rows(out, paper_corpora)
    if out["paper_row"].notna().any():
        for c in ("uar_minus", "uar_plus"):
            out[f"{c}_paper"] = [_paper_value(paper, r, f"table3_{c}") for r in out["paper_row"]]
        out["delta_paper"] = out["uar_plus_paper"] - out["uar_minus_paper"]
    return _order(out.drop(columns="paper_row"))


# --- text rendering -----------------------------------------------------------


def _three_decimals(v: float, spec: str) -> str:
    """``v`` to three decimals, or to one significant digit where that would read 0.

    A CI bound of .0004 printed ``.000`` read as a CI touching 0 beside a verdict that
    (rightly, from the unrounded bound) said it excludes 0; -0.0004 printed ``-.000``.
    """
    if abs(v) < UAR_TIE:  # rounding noise of a difference of equal values (``.000``)
        v = 0.0
    if v != 0 and abs(v) < 0.0005:  # fixed point to one significant digit, never 1e-05
        digits = -math.floor(math.log10(abs(v)))
        return f"{v:{spec[:-3]}.{digits}f}"
    return f"{v:{spec}}"


def fmt_uar(v: float) -> str:
    """``.754`` (three decimals, no leading zero); NaN -> ``–``; never a non-zero ``.000``.

    Examples
    --------
    >>> fmt_uar(0.7541), fmt_uar(1.0), fmt_uar(float("nan"))
    ('.754', '1.000', '–')
    >>> fmt_uar(0.0004), fmt_uar(-0.0004), fmt_uar(0.0), fmt_uar(-0.0), fmt_uar(1.2e-5)
    ('.0004', '-.0004', '.000', '.000', '.00001')
    >>> fmt_uar(5.551115123125783e-17), fmt_uar(-5.551115123125783e-17)
    ('.000', '.000')
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    s = _three_decimals(v + 0.0, ".3f")  # + 0.0: no "-.000" for -0.0
    return s[1:] if s.startswith("0") else s.replace("-0.", "-.")


def fmt_delta(v: float) -> str:
    """``+0.022`` as in the paper; NaN -> ``–``; never a non-zero ``0.000``.

    Examples
    --------
    >>> fmt_delta(0.0221), fmt_delta(-0.0004), fmt_delta(0.0)
    ('+0.022', '-0.0004', '+0.000')
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return _three_decimals(v + 0.0, "+.3f")


def fmt_ci(low: float, high: float) -> str:
    """``[.011, .025]``; NaN -> ``–``; a bound that is not 0 never prints as ``.000``.

    Examples
    --------
    >>> fmt_ci(0.0004, 0.05), fmt_ci(-0.05, -0.0004)  # both exclude 0, and read so
    ('[.0004, .050]', '[-.050, -.0004]')
    """
    if any(v is None or math.isnan(v) for v in (low, high)):
        return "–"
    return f"[{fmt_uar(low)}, {fmt_uar(high)}]"


def fmt_p(p: float, *, latex: bool = False) -> str:
    """Two significant digits, rounded down, from .001 on; scientific below.

    Rounding down keeps a p just under a threshold under it in print: .0496 reads .049,
    never .05 (which would read as not significant at .05).

    Examples
    --------
    >>> fmt_p(0.0142), fmt_p(0.0496), fmt_p(0.0042), fmt_p(4e-7), fmt_p(1.0)
    ('0.014', '0.049', '0.0042', '4.0e-07', '1')
    >>> fmt_p(0.05099), fmt_p(0.1), fmt_p(0.001)  # both digits, trailing zeros too
    ('0.050', '0.10', '0.0010')
    >>> fmt_p(0.99999999999999), fmt_p(0.995)
    ('1', '0.99')
    >>> fmt_p(9.99996e-5), fmt_p(0.000999)  # below 1e-4 and 1e-3 in print too
    ('9.9e-05', '9.9e-04')
    >>> fmt_p(5e-324)  # exact McNemar with b = 0 and c ~ 1,075
    '4.9e-324'
    >>> fmt_p(4e-7, latex=True)
    '$4.0\\\\times10^{-7}$'
    """
    if p is None or math.isnan(p):
        return "–"
    if p >= 0.001:
        unit = 10.0 ** (math.floor(math.log10(p)) - 1)  # of the second significant digit
        floor = math.floor(round(p / unit, 9)) * unit
        if floor >= 1:  # p = 1, or so close that its two digits round to 1
            return "1"
        # "#": two significant digits kept (.05099 printed "0.05", read as at alpha)
        return f"{floor:#.2g}"
    if p == 0:
        return "0"
    mantissa, exp_text = f"{p:.12e}".split("e")  # not p / 10**exp: 10.0**-324 is 0
    exp = int(exp_text)
    tenths = math.floor(round(float(mantissa) * 10, 9))  # rounded down, as above
    if tenths >= 100:  # log10 just under an integer
        exp, tenths = exp + 1, tenths // 10
    mant = f"{tenths / 10:.1f}"
    if latex:
        return f"${mant}\\times10^{{{exp}}}$"
    return f"{mant}e{exp:+03d}"


def _few_speakers(rec: Mapping[str, Any]) -> bool:
    """A run row whose CIs rest on fewer than :data:`MIN_CI_SPEAKERS` speakers."""
    k = rec.get("n_speakers")
    return not rec["quoted"] and k is not None and not math.isnan(k) and k < MIN_CI_SPEAKERS


def ci_name(confidence_level: float) -> str:
    """``95% CI`` for 0.95 (the evaluation's ``confidence_level``).

    Examples
    --------
    >>> ci_name(0.95), ci_name(0.9), ci_name(0.999)
    ('95% CI', '90% CI', '99.9% CI')
    """
    return f"{100 * confidence_level:.10g}% CI"


def _display(
    table: pd.DataFrame, kind: str, *, latex: bool, confidence_level: float = 0.95
) -> tuple[list[str], list[tuple]]:
    """Header and rows of strings; a row is ``(group, cells)``."""
    paper = any(c.endswith("_paper") for c in table.columns)
    several = _several_corpora(table)
    minus, plus, delta = ("UAR⁻", "UAR⁺", "Δ")  # to_latex's _tex sets them in math
    if kind == "II":
        header = ["Model"]
        for split in TABLE2_SPLITS:
            header += [f"{split} {minus}", f"{split} {plus}", f"{split} {delta}"]
            if paper:
                header += [
                    f"{split} paper {minus}",
                    f"{split} paper {plus}",
                    f"{split} paper {delta}",
                ]
    else:
        header = [
            "Model",
            "eval set",
            minus,
            ci_name(confidence_level),
            plus,
            ci_name(confidence_level),
            delta,
            ci_name(confidence_level),
            "p",
            "p (Holm)",
        ]
        if paper:
            header += [f"paper {minus}", f"paper {plus}", f"paper {delta}"]
    rows = []
    for rec in table.to_dict("records"):
        cells = [_name(rec, several) + (" †" if rec["quoted"] else "")]
        if kind == "II":
            for split in TABLE2_SPLITS:
                lack = " §" if _absent(rec, f"{split}_absent_classes") else ""
                cells += [
                    fmt_uar(rec[f"{split}_uar_minus"]) + lack,
                    fmt_uar(rec[f"{split}_uar_plus"]) + lack,
                    fmt_delta(rec[f"{split}_delta"]),
                ]
                if paper:
                    cells += [
                        fmt_uar(rec.get(f"{split}_uar_minus_paper")),
                        fmt_uar(rec.get(f"{split}_uar_plus_paper")),
                        fmt_delta(rec.get(f"{split}_delta_paper")),
                    ]
        else:
            mark = " ‡" if _few_speakers(rec) else ""
            lack = " §" if _absent(rec, "absent_classes") else ""
            cells += [
                rec["split"] if isinstance(rec["split"], str) and rec["split"] else "–",
                fmt_uar(rec["uar_minus"]) + lack,
                fmt_ci(rec["uar_minus_ci_low"], rec["uar_minus_ci_high"]) + mark,
                fmt_uar(rec["uar_plus"]) + lack,
                fmt_ci(rec["uar_plus_ci_low"], rec["uar_plus_ci_high"]) + mark,
                fmt_delta(rec["delta"]),
                fmt_ci(rec["delta_ci_low"], rec["delta_ci_high"]) + mark,
                fmt_p(rec["p"], latex=latex).replace("$", _MATH),
                fmt_p(rec["p_holm"], latex=latex).replace("$", _MATH),
            ]
            if paper:
                cells += [
                    fmt_uar(rec.get("uar_minus_paper")),
                    fmt_uar(rec.get("uar_plus_paper")),
                    fmt_delta(rec.get("delta_paper")),
                ]
        rows.append((rec["group"], cells))
    return header, rows


def _several_corpora(table: pd.DataFrame) -> bool:
    """Whether the table's run rows are of more than one corpus (then named with it)."""
    return table.loc[~table["quoted"], "corpus"].nunique() > 1


def _name(rec: Mapping[str, Any], several: bool) -> str:
    """A row's name in the table and its notes: ``corpus / label`` when the table holds
    several corpora (two notes on ``reference (test)`` told them apart by nothing)."""
    return f"{rec['corpus']} / {rec['label']}" if several and not rec["quoted"] else rec["label"]


def _absent(rec: Mapping[str, Any], column: str) -> str:
    """The classes a run row's split lacks (``;``-joined), or ``""``."""
    value = rec.get(column)
    return value if isinstance(value, str) and not rec["quoted"] else ""


def _notes(table: pd.DataFrame, kind: str, confidence_level: float = 0.95) -> list[str]:
    notes = []
    several = _several_corpora(table)
    splits = TABLE2_SPLITS if kind == "II" else (None,)
    for rec in table.to_dict("records"):
        for split in splits:
            column = f"{split}_absent_classes" if split else "absent_classes"
            if lack := _absent(rec, column):
                notes.append(
                    f"§ {_name(rec, several)} ({split or rec['split']}): no utterance of "
                    f"{', '.join(lack.split(';'))} in this split; its UARs average the other "
                    "classes (another chance level), not comparable with a UAR over all."
                )
    if kind == "III":
        notes.append(
            f"{ci_name(confidence_level)}s: speaker-clustered percentile bootstrap; Δ CI paired (same resamples); "
            "p: exact McNemar on per-utterance correctness, Holm over each (corpus, model) "
            "family: all its primary comparisons (aligned vs audio-only, aligned vs each "
            "perturbation level, each level vs audio-only) on all its splits together; p rounded "
            "down to two significant digits, so a p under a threshold stays under it in print."
        )
        for rec in table.to_dict("records"):
            if _few_speakers(rec):
                k = int(rec["n_speakers"])
                notes.append(
                    f"‡ {_name(rec, several)} ({rec['split']}): {k} speaker(s), fewer than "
                    f"{MIN_CI_SPEAKERS}; its CIs do not estimate between-speaker variation "
                    "(too few distinct speaker resamples); p (McNemar, per utterance) speaks "
                    "for these speakers' utterances only."
                )
    else:
        notes.append("Δ = UAR⁺ − UAR⁻; – : not scored on that split.")
    for rec in table[table["quoted"]].to_dict("records"):
        notes.append(
            f"† {rec['label']}: quoted from {rec['source']}, on {rec['quoted_on']}; not run here."
        )
    return notes


def to_markdown(
    table: pd.DataFrame, *, kind: str, title: str, confidence_level: float = 0.95
) -> str:
    """The table as a GitHub-flavoured Markdown section (title, table, notes);
    ``confidence_level`` names its CIs (the evaluation's)."""
    header, rows = _display(table, kind, latex=False, confidence_level=confidence_level)
    header = [_md(c) for c in header]
    rows = [(g, [_md(c) for c in cells]) for g, cells in rows]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
    group = None
    for g, cells in rows:
        if g != group:
            group = g
            lines.append(
                "| " + " | ".join([f"*{_md(group_heading(g))}*"] + [""] * (len(header) - 1)) + " |"
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"{n}  " for n in _notes(table, kind, confidence_level)]
    return "\n".join(lines).rstrip() + "\n"


#: delimits the math this module writes in a LaTeX cell; a "$" in a label is text
_MATH = "\ue000"


def _md(cell: str) -> str:
    """A Markdown table cell: a ``|`` in a label would split it."""
    return cell.replace("|", "\\|")


_TEX_ESCAPE = {
    "&": r"\&",
    "%": r"\%",
    "_": r"\_",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "\\": r"\textbackslash{}",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
    "|": r"\textbar{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "†": r"$^\dagger$",
    "‡": r"$^\ddagger$",
    "Δ": r"$\Delta$",
    "⁺": r"$^+$",
    "⁻": r"$^-$",
    "−": "$-$",
    "–": "--",
    "§": r"\S{}",
}


def _tex(text: str) -> str:
    r"""Escape every LaTeX special of ``text`` but the math this module delimits with
    :data:`_MATH`; a number's minus sign is set as one (``-0.05`` -> ``$-$0.05``).

    Examples
    --------
    >>> print(_tex("a_b $5 {x} -0.05 [-.02, .1] wav2vec2-base Δ"))
    a\_b \$5 \{x\} $-$0.05 [$-$.02, .1] wav2vec2-base $\Delta$
    """
    parts = text.split(_MATH)
    for i in range(0, len(parts), 2):
        minus = _NUMBER_MINUS.sub("\u2212", parts[i])
        parts[i] = "".join(_TEX_ESCAPE.get(ch, ch) for ch in minus)
    return "$".join(parts)


#: a hyphen-minus that signs a number: not inside a word (wav2vec2-base)
_NUMBER_MINUS = re.compile(r"(?<![\w.])-(?=\.?\d)")


def to_latex(
    table: pd.DataFrame, *, kind: str, title: str, label: str, confidence_level: float = 0.95
) -> str:
    """The table as a LaTeX ``table`` with booktabs rules (CIs named as in
    :func:`to_markdown`)."""
    header, rows = _display(table, kind, latex=True, confidence_level=confidence_level)
    n = len(header)
    out = [
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{_tex(title)}}}",
        f"\\label{{{label}}}",
        "\\small",
        f"\\begin{{tabular}}{{l{'r' * (n - 1)}}}",
        "\\toprule",
        " & ".join(map(_tex, header)) + " \\\\",
        "\\midrule",
    ]
    group = None
    for g, cells in rows:
        if g != group:
            if group is not None:
                out.append("\\midrule")
            group = g
            out.append(f"\\multicolumn{{{n}}}{{l}}{{\\emph{{{_tex(group_heading(g))}}}}} \\\\")
        out.append(" & ".join(map(_tex, cells)) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    for note in _notes(table, kind, confidence_level):
        out.append(f"\\par\\footnotesize {_tex(note)}")
    out.append("\\end{table}")
    return "\n".join(out) + "\n"


def to_csv(table: pd.DataFrame) -> str:
    """CSV text with a fixed float format (byte-stable)."""
    return table.to_csv(index=False, float_format="%.10g", lineterminator="\n")
