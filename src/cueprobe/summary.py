"""A one-page cue-use summary per (corpus, model), in words a reader can act on.

Five questions, each answered from the evaluation tables with its CI and p
(Holm-corrected within the (corpus, model) family: every primary comparison of
all its splits; the page says how many):

token sensitivity
    aligned vs audio_only: does the model use the token block at all?
alignment
    aligned vs conflict, shuffle and the most corrupted level (the paper's
    central test): does the token *content* matter?
robust fallback
    conflict vs audio_only: do contradictory tokens drag it below audio-only?
format prior
    shuffle vs audio_only: does a token block help even when it is misaligned?
monotone degradation
    Spearman's rho of UAR against the corruption probability p, confirmed by the
    speaker-bootstrap CI of aligned vs the highest p (see :func:`_degradation`).

A comparison's verdict needs Holm p < alpha, a CI excluding 0, and McNemar's
discordant pairs on the CI's side; without all three, the page says the data cannot
tell, never that there is no effect.
"""

from __future__ import annotations

import math

import pandas as pd

from cueprobe.interventions import corrupt_level
from cueprobe.metrics import MIN_CI_SPEAKERS
from cueprobe.metrics import OTHER
from cueprobe.tables import ci_name
from cueprobe.tables import fmt_ci
from cueprobe.tables import fmt_delta
from cueprobe.tables import fmt_p
from cueprobe.tables import fmt_uar


def _find(comparisons: pd.DataFrame, split: str, a: str, b: str) -> dict | None:
    hit = comparisons[
        (comparisons["split"] == split)
        & (comparisons["a"] == a)
        & (comparisons["b"] == b)
        & (comparisons["role"] == "primary")
    ]
    return None if hit.empty else hit.iloc[0].to_dict()


#: stands for the CI's name ("95% CI") until :func:`cue_use_summary` knows the level
_CI = "\x00CI\x00"


def _evidence(row: dict) -> str:
    b, c = row["mcnemar_b"], row["mcnemar_c"]
    counts = f"b = {b}, c = {c}"
    if row["p"] == 1.0:
        from cueprobe.stats import mcnemar_pvalue  # not in the run's end-of-run notes

        if mcnemar_pvalue(b, c) < 1.0:  # stats.mcnemar_levels' p of 1 when the seeds
            # disagree: "p = 1 (b = 8, c = 0)" read as a contradiction
            counts += " in its least significant seed pair; its seeds disagree on which is better"
    return (
        f"ΔUAR {fmt_delta(row['delta'])}, {_CI} {fmt_ci(row['ci_low'], row['ci_high'])}, "
        f"McNemar p = {fmt_p(row['p'])} (Holm {fmt_p(row['p_holm'])}; {counts})"
    )


def _side(row: dict) -> int:
    """+1 / -1 when the CI of a - b lies above / below 0, else 0."""
    return 1 if row["ci_low"] > 0 else (-1 if row["ci_high"] < 0 else 0)


def _counts_agree(row: dict) -> bool:
    """McNemar's discordant pairs lean to the side of the CI (b: only a right, c: only b).

    UAR weighs each class equally and McNemar counts utterances: with unbalanced
    classes a system can be better by one and worse by the other, and a verdict needs
    both (an intervention with several seeds: its least significant seed's counts).
    """
    b, c = row["mcnemar_b"], row["mcnemar_c"]
    return (b > c) if _side(row) > 0 else (c > b)


def _direction(row: dict, alpha: float) -> int:
    """+1 / -1 when the difference is significant, else 0: Holm p < alpha, the CI
    excludes 0, and McNemar's discordant pairs lean the same way."""
    significant = row["p_holm"] < alpha and _side(row) != 0 and _counts_agree(row)
    return _side(row) if significant else 0


def _sensitivity(row: dict | None, alpha: float) -> str:
    if row is None:
        return "not measured (needs aligned and audio_only)."
    d = _direction(row, alpha)
    verdict = {
        1: "**Uses the cues.** Aligned tokens raise UAR over audio-only.",
        -1: "**Aligned tokens hurt.** UAR falls when the token block is added; check the prompt.",
        0: "**Inconclusive.** Aligned tokens are not significantly different from audio-only "
        f"({_undecided(row, alpha)}); this does not show that the model ignores the token block.",
    }[d]
    return f"{verdict} {_evidence(row)}."


def _undecided(row: dict, alpha: float) -> str:
    """What a comparison without a verdict still says: its CI, and why it is no verdict."""
    side = _side(row)
    if not side:
        return "its CI includes 0: an effect of either sign within the CI fits the data"
    where = "above" if side > 0 else "below"
    if not row["p_holm"] < alpha:
        return f"its CI excludes 0 ({where}), but Holm p is not below alpha"
    return (
        f"its CI excludes 0 ({where}) and Holm p is below alpha, but more utterances go the "
        "other way (McNemar's b and c): UAR and accuracy disagree"
    )


def _fallback(row: dict | None, alpha: float) -> str:
    if row is None:
        return "not measured (needs conflict and audio_only)."
    d = _direction(row, alpha)
    verdict = {
        1: "**Robust fallback.** Even contradictory tokens stay above audio-only: the model "
        "integrates the cues with the audio rather than following them.",
        0: "**Inconclusive.** Contradictory tokens are not significantly different from "
        f"audio-only ({_undecided(row, alpha)}); this does not show that the model stays anchored "
        "to the audio.",
        -1: "**Over-reliance.** Contradictory tokens drag UAR below audio-only: the model follows "
        "the cue channel against the audio; do not feed it unverified cues.",
    }[d]
    return f"{verdict} {_evidence(row)}."


def _format_prior(row: dict | None, alpha: float) -> str:
    if row is None:
        return "not measured (needs shuffle and audio_only)."
    d = _direction(row, alpha)
    verdict = {
        1: "**Format prior.** A misaligned token block still helps: part of the token gain "
        "comes from the block's presence, not its content.",
        0: "**Inconclusive.** Shuffled tokens are not significantly different from none "
        f"({_undecided(row, alpha)}); this does not show that the block's presence alone "
        "does nothing.",
        -1: "**Misaligned tokens hurt.** Shuffled tokens fall below audio-only.",
    }[d]
    return f"{verdict} {_evidence(row)}."


def _alignment(comparisons: pd.DataFrame, metrics: pd.DataFrame, split: str, alpha: float) -> str:
    """Aligned vs conflict, shuffle and the curve's far end: the paper's central test.

    ``metrics`` are the split's rows (their ``kind`` and ``p`` give the corruption levels).
    """
    corrupt = metrics.loc[metrics["kind"] == "corrupt", "p"]
    wanted = ["conflict", "shuffle"] + ([corrupt_level(corrupt.max())] if len(corrupt) else [])
    rows = [r for b in wanted if (r := _find(comparisons, split, "aligned", b)) is not None]
    if not rows:
        return "not measured (needs aligned and a perturbation)."
    sides = [_direction(r, alpha) for r in rows]
    beaten = [r["b"] for r, d in zip(rows, sides, strict=True) if d > 0]
    beating = [r["b"] for r, d in zip(rows, sides, strict=True) if d < 0]
    if len(beaten) == len(rows):
        verdict = "**Content matters.** Aligned tokens beat every perturbation measured."
    elif beaten:
        verdict = f"**Content matters in part.** Aligned tokens beat {', '.join(beaten)} only"
        verdict += f"; {', '.join(beating)} beat(s) them." if beating else "."
    elif beating:
        verdict = "**Perturbed tokens do better.** A perturbation beats the aligned tokens."
    else:
        verdict = (
            "**Inconclusive.** Aligned tokens are not significantly better than any perturbation."
        )
    details = "; ".join(f"vs {r['b']}: {_evidence(r)}" for r in rows)
    return f"{verdict} {details}."


def _degradation(
    corruption: pd.DataFrame, comparisons: pd.DataFrame, split: str, alpha: float
) -> str:
    """Spearman's trend over the (p, seed) runs, confirmed at the curve's far end.

    Spearman's p treats the runs as independent, but they share the utterances (and,
    by design, one seed's corruption is nested in p), so alone it overstates the
    evidence. Simulated (``tests/unit/test_tables.py``: 10 speakers x 30 utterances,
    5 seeds, corrupted-token accuracy equal to aligned in expectation), Spearman alone
    reported degradation at alpha = .05 in 21 % of 300 runs. A trend verdict therefore
    also needs the paired speaker-bootstrap CI of aligned - corrupt_p{max} (over
    speakers and utterances) to exclude 0 in the same direction: 3.3 % false verdicts,
    and 91 % of 100 runs found a real 10-point drop.
    """
    rows = corruption[corruption["split"] == split]
    if rows.empty:
        return "not measured (no corruption runs)."
    rho, p, n = rows["rho"].iloc[0], rows["rho_p"].iloc[0], int(rows["n_runs"].iloc[0])
    if math.isnan(rho):
        if n < 3:  # stats.spearman: NaN below 3 runs, whatever the UARs
            return f"**Undefined.** Only {n} (p, seed) run(s): Spearman's ρ needs 3."
        constant = "p" if rows["p"].nunique() < 2 else "UAR"
        return (
            f"**Undefined.** {constant} does not vary over the {n} (p, seed) runs "
            "(Spearman's ρ is NaN)."
        )
    curve = ", ".join(
        f"p={r.p:g}: {fmt_uar(r.uar_mean)}" for r in rows.sort_values("p").itertuples()
    )
    evidence = f"Spearman ρ = {rho:+.2f}, p = {fmt_p(p)} over {n} (p, seed) runs"
    end = _find(comparisons, split, "aligned", corrupt_level(rows["p"].max()))
    if end is not None:
        evidence += (
            f"; aligned vs {end['b']}: ΔUAR {fmt_delta(end['delta'])}, {_CI} "
            f"{fmt_ci(end['ci_low'], end['ci_high'])}"
        )
    trend = 0 if not p < alpha else (-1 if rho < 0 else 1)
    # delta = aligned - corrupt: > 0 when corruption lowers UAR
    confirmed = end is not None and trend != 0 and _side(end) == -trend
    if trend < 0 and confirmed:
        verdict = (
            "**Degradation.** UAR falls as tokens are corrupted (a rank trend over the runs, "
            "confirmed at the far end): the content matters."
        )
    elif trend > 0 and confirmed:
        verdict = "**Inverted.** UAR rises with corruption: the tokens mislead this model."
    elif trend:
        verdict = (
            f"**Trend across runs only.** UAR {'falls' if trend < 0 else 'rises'} with p over "
            "the corruption runs, "
        ) + (
            "not confirmed: without aligned there is no speaker-bootstrap CI of the curve's "
            "far end."
            if end is None
            else "but the far end of the curve is within the speaker-bootstrap CI of "
            "aligned: the runs share these utterances, so the trend may not generalise."
            if not _side(end)
            else "but the far end of the curve differs from aligned the other way (its "
            "speaker-bootstrap CI excludes 0 against the trend): no verdict."
        )
    else:
        verdict = "**Inconclusive.** Spearman's p is not below alpha: no trend over the runs" + (
            "."
            if end is None or not _side(end)
            else ", but the curve's far end differs from aligned (its CI excludes 0)."
        )
    return f"{verdict} {evidence}; mean UAR {curve}."


def _unreadable(m: pd.DataFrame, levels: list[str]) -> str | None:
    """Why a verdict over ``levels`` is not given: most answers of one of them unparsed,
    or more than :data:`TOLERATED_ERRORS` of them errors.

    ``m``: a split's metrics by condition; a level is a condition or a seed family
    (``shuffle``, ``corrupt``: its runs with p > 0), whose runs' mean share counts. The
    corrupt family is also read at its far end (the runs of the largest p), which the
    Alignment verdict and the Degradation confirmation compare with aligned: its runs
    90 % unparsed passed as the family's mean (37.5 % beside runs at 20 %).
    """
    errors = m["n_error"] / m["n"] if "n_error" in m else pd.Series(0.0, index=m.index)
    groups = []
    for level in levels:
        if level in ("shuffle", "corrupt"):
            runs = (m["kind"] == level) & ((m["p"] > 0) if level == "corrupt" else True)
            groups.append((level, runs))
            if level == "corrupt" and runs.any():
                far = m.loc[runs, "p"].max()
                groups.append((corrupt_level(far), runs & (m["p"] == far)))
        else:
            groups.append((level, None))
    for level, runs in groups:
        if runs is not None:
            share = m.loc[runs, "unparsed_rate"].mean() if runs.any() else 0.0
            error = errors[runs].mean() if runs.any() else 0.0
        else:
            share = m["unparsed_rate"].get(level, 0.0)
            error = errors.get(level, 0.0)
        if error > TOLERATED_ERRORS:
            return (
                f"Not assessed: {error:.1%} of the {level} answers are errors (the model or "
                "its server failed on them, counted wrong); a forced re-run of the "
                "inference jobs asks them again."
            )
        if share >= UNUSABLE_UNPARSED:
            return (
                f"Not assessed: {share:.1%} of the {level} answers are unparsed (counted "
                "wrong), so the comparison is one of wrong-by-default answers."
            )
    return None


def _verdicts(
    comparisons: pd.DataFrame, corruption: pd.DataFrame, m: pd.DataFrame, split: str, alpha: float
) -> list[str]:
    """The five verdict lines of one split (``m``: its metrics by condition); a verdict
    over conditions whose answers are mostly unparsed is not given (:func:`_unreadable`)."""
    rows = [
        ("Token sensitivity", "aligned vs audio-only", ["audio_only", "aligned"],
         lambda: _sensitivity(_find(comparisons, split, "aligned", "audio_only"), alpha)),
        ("Alignment", "aligned vs the perturbations", ["aligned", "conflict", "shuffle", "corrupt"],
         lambda: _alignment(comparisons, m, split, alpha)),
        ("Robust fallback", "conflict vs audio-only", ["audio_only", "conflict"],
         lambda: _fallback(_find(comparisons, split, "conflict", "audio_only"), alpha)),
        ("Format prior", "shuffle vs audio-only", ["audio_only", "shuffle"],
         lambda: _format_prior(_find(comparisons, split, "shuffle", "audio_only"), alpha)),
        ("Monotone degradation", "corruption curve", ["aligned", "corrupt"],
         lambda: _degradation(corruption, comparisons, split, alpha)),
    ]  # fmt: skip
    return [
        f"- **{name}** ({what}): " + (_unreadable(m, levels) or verdict())
        for name, what, levels, verdict in rows
    ] + [""]


#: an audio-only unparsed share from which the verdicts are not given: every comparison
#: is against audio-only, and most of its answers would be wrong by default
UNUSABLE_UNPARSED = 0.5
#: the share of error answers (no answer: the model or its server failed) above which a
#: verdict reading that condition is not given. Each error is scored wrong, so errors that
#: fall on one condition more than another (a server's context limit hits the longer
#: token prompts) shift its UAR by about their share times the accuracy: 27 % of
#: errors made "aligned tokens hurt" with Holm p 4e-6 out of a model right on every
#: answer it gave, and the paper's effects are 0.01-0.04
TOLERATED_ERRORS = 0.01


def answer_alarms(
    metrics: pd.DataFrame, confusion: pd.DataFrame | None = None
) -> dict[str, list[str]]:
    """Per split, what makes the model's answers unfit to read the page by.

    A class of the label set that the split lacks (its UAR averages fewer classes),
    error answers in any condition (``n_error``: no answer, counted wrong), most
    audio-only answers unparsed (a wrong prompt, ``answer_pattern`` or
    ``max_new_tokens``; a model that answers in sentences), or one label for every clip
    (``confusion``: the model may not hear the audio; UAR is 1/k by construction).

    Examples
    --------
    >>> m = pd.DataFrame({"split": ["test"], "condition": ["audio_only"],
    ...                   "unparsed_rate": [0.9], "n": [40]})
    >>> print(*answer_alarms(m)["test"])
    90.0% of the 40 audio-only answers are unparsed (counted wrong): read their raw_output; the prompt, answer_pattern or max_new_tokens may not fit this model
    """
    out = {}
    for split, m in metrics[metrics["condition"] == "audio_only"].groupby("split", sort=False):
        row = m.iloc[0]
        alarms = []
        if "n_error" in metrics:
            errors = metrics[(metrics["split"] == split) & (metrics["n_error"] > 0)]
            if len(errors):
                named = ", ".join(f"{r.condition} {int(r.n_error)}" for r in errors.itertuples())
                alarms.append(
                    f"{int(errors['n_error'].sum())} error answer(s), where the model or its "
                    f"server failed or the audio could not be read (counted wrong; {named}): "
                    "the job logs name the files (an unreadable one is also `unreadable` in "
                    "the features table); `snakemake --forcerun query_audio_only "
                    "query_token_conditions query_model_shard` asks only them again"
                )
        if row["unparsed_rate"] >= UNUSABLE_UNPARSED:
            alarms.append(
                f"{row['unparsed_rate']:.1%} of the {int(row['n'])} audio-only answers are "
                "unparsed (counted wrong): read their raw_output; the prompt, answer_pattern "
                "or max_new_tokens may not fit this model"
            )
        absent = row.get("absent_classes")  # absent from metrics evaluated before it
        if isinstance(absent, str) and absent:  # UAR is a mean over the classes the split has
            k = int(row["n_classes"])
            alarms.append(
                f"class(es) {absent.split(';')} have no utterance in this split: its UARs are "
                f"means over the other {k} classes (chance 1/{k}), not comparable with a UAR "
                f"over all {k + len(absent.split(';'))} (the paper's, another split's)"
            )
        if confusion is not None:
            c = confusion[(confusion["split"] == split) & (confusion["condition"] == "audio_only")]
            said = c[(c["count"] > 0) & (c["pred"] != OTHER)].groupby("pred")["count"].sum()
            if len(said) == 1 and said.iloc[0] >= 2:
                alarms.append(
                    f"every parsed audio-only answer is {said.index[0]!r} ({int(said.iloc[0])} "
                    "utterances): the model may not hear the audio (see the predictions' "
                    "audio_only.check.json); its UAR is that of a constant guess"
                )
        out[split] = alarms
    return out


def cue_use_summary(
    metrics: pd.DataFrame,
    comparisons: pd.DataFrame,
    corruption: pd.DataFrame,
    *,
    corpus: str,
    model: str,
    alpha: float,
    confidence_level: float = 0.95,
    confusion: pd.DataFrame | None = None,
) -> str:
    """The Markdown page for one (corpus, model); one section per evaluated split.

    Parameters
    ----------
    metrics, comparisons, corruption : pandas.DataFrame
        The evaluation stage's tables (:class:`cueprobe.stats.Evaluation`).
    corpus, model : str
        Names shown in the title (``model`` is the display label).
    alpha : float
        Significance level for the verdicts (Holm-corrected p).
    confidence_level : float, default: 0.95
        The evaluation's: the page names its CIs by it.
    confusion : pandas.DataFrame, optional
        The evaluation's confusion table: a split whose audio-only answers are all one
        label says so (:func:`answer_alarms`).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must lie in (0, 1), got {alpha!r}.")
    lines = [f"# Cue use of {model} on {corpus}", ""]
    alarms_of = answer_alarms(metrics, confusion)
    primary = comparisons[(comparisons["role"] == "primary") & comparisons["p_holm"].notna()]
    family = len(primary)
    names = list(dict.fromkeys(metrics["split"]))
    splits = f"its {len(names)} splits ({', '.join(names)})" if len(names) > 1 else "its split"
    for split in dict.fromkeys(metrics["split"]):
        m = metrics[metrics["split"] == split].set_index("condition")
        n, n_spk = int(m["n"].iloc[0]), int(m["n_speakers"].iloc[0])
        lines += [f"## Split: {split} ({n} utterances, {n_spk} speakers)", ""]
        if n_spk < MIN_CI_SPEAKERS:
            n_distinct = int(m["n_distinct_resamples"].iloc[0])
            lines += [
                f"> **Only {n_spk} speaker(s).** The speaker-clustered CIs below rest on too few "
                f"speaker configurations ({n_distinct} distinct resamples) to estimate "
                f"between-speaker variation (need {MIN_CI_SPEAKERS}+ speakers): read them, and "
                "the verdicts, as evidence about these speakers' utterances (McNemar), not "
                "about speakers at large.",
                "",
            ]
        alarms = alarms_of.get(split, [])
        if alarms:
            lines += [
                "> **Check the answers first.** " + ". ".join(a[0].upper() + a[1:] for a in alarms)
                + ".",
                "",
            ]  # fmt: skip
        lines += _verdicts(comparisons, corruption, m, split, alpha)
        lines += [
            f"| condition | UAR | {_CI} | WA | unparsed |",
            "|:---|---:|---:|---:|---:|",
        ]
        for cond in ("audio_only", "aligned", "conflict"):
            if cond in m.index:
                r = m.loc[cond]
                lines.append(
                    f"| {cond} | {fmt_uar(r['uar'])} | {fmt_ci(r['ci_low'], r['ci_high'])} | "
                    f"{fmt_uar(r['wa'])} | {r['unparsed_rate']:.1%} |"
                )
        for kind, name in (("shuffle", "shuffle"), ("corrupt", "corrupt p > 0")):
            sub = m[m["kind"] == kind]
            if kind == "corrupt":  # p = 0 asks the aligned prompts again: not a corruption
                sub = sub[sub["p"] > 0]
            if len(sub):
                worst = sub["unparsed_rate"].max()
                lines.append(
                    f"| {name} ({len(sub)} runs, mean) | {fmt_uar(sub['uar'].mean())} | – | "
                    f"{fmt_uar(sub['wa'].mean())} | ≤ {worst:.1%} |"
                )
        n_deg = int(m["n_degenerate"].iloc[0])
        n_res = int(m["n_resamples"].iloc[0])
        lines += [
            "",
            f"Bootstrap: {n_res} speaker resamples; {n_deg} lacked a class the split has (UAR "
            f"over the classes present). Holm runs over the {family} primary comparisons of this model on "
            f"{splits} together. A comparison's verdict needs Holm p < {alpha:g}, a CI "
            "excluding 0 and more discordant utterances on the CI's side (McNemar's b, c); "
            f"the degradation verdict needs Spearman p < {alpha:g} (not "
            "Holm-corrected) and the CI of aligned vs the curve's far end excluding 0. "
            "Unparsed answers count as wrong.",
            "",
        ]
    return "\n".join(lines).rstrip().replace(_CI, ci_name(confidence_level)) + "\n"
