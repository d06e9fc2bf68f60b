"""Evaluation subcommands: ``evaluate`` (with the cue-use summary), ``make-table``,
``plot-evaluation`` (Figures 2 and 3).

Few, coarse jobs on purpose: every process pays ~0.4 s of Python + pandas start-up
(0.9 s with matplotlib) before it does anything, so the summary is written by the job that
computed the tables it reads, and Figures 2 and 3 of one (corpus, model) are drawn by one
job (bench/README.md, "Incremental demo").

The bootstrap generator is ``np.random.default_rng([seed, EVALUATION_STREAM])``
with the config seed, drawn from split by split in the order the model's splits are
listed: the models of one corpus scored on the same splits (the defaults: every
zero-shot model, and every trained one) get the same speaker resamples, and every
statistic regenerates exactly.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cueprobe import io
from cueprobe.cli import COUNT
from cueprobe.cli import LEVEL
from cueprobe.cli import NATURAL
from cueprobe.cli import labels_json

log = logging.getLogger(__name__)

#: second word of the bootstrap seed sequence (the stage's index in cli.STAGES)
EVALUATION_STREAM = 5


def register(sub: argparse._SubParsersAction) -> None:
    """Add the evaluation-stage subcommands."""
    p = sub.add_parser(
        "evaluate", help="metrics, bootstrap CIs, tests and cue-use summary of one (corpus, model)"
    )
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument(
        "--predictions", type=Path, nargs="+", required=True, help="<condition>.parquet files"
    )
    p.add_argument("--labels", type=labels_json, required=True, help="JSON {label: [synonyms]}")
    p.add_argument("--splits", type=json.loads, required=True, help='JSON list, e.g. ["all"]')
    p.add_argument("--n-resamples", type=COUNT, required=True)
    p.add_argument("--confidence-level", type=LEVEL, required=True)
    p.add_argument("--seed", type=NATURAL, required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--metrics-out", type=Path, required=True)
    p.add_argument("--confusion-out", type=Path, required=True)
    p.add_argument("--comparisons-out", type=Path, required=True)
    p.add_argument("--corruption-out", type=Path, required=True)
    p.add_argument("--summary-out", type=Path, required=True, help="cue-use summary (Markdown)")
    p.add_argument("--label", required=True, help="model name the summary shows")
    p.add_argument("--alpha", type=LEVEL, required=True, help="significance level of the summary")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("make-table", help="Table II or III as CSV, Markdown and LaTeX")
    p.add_argument("--table", choices=["II", "III"], required=True)
    p.add_argument("--metrics", type=Path, nargs="+", required=True)
    p.add_argument("--comparisons", type=Path, nargs="+", required=True)
    p.add_argument("--models", type=json.loads, required=True, help="JSON {model: config}")
    p.add_argument("--literature", type=json.loads, default=[], help="JSON tables.literature")
    p.add_argument("--paper", type=json.loads, default={}, help="JSON tables.paper")
    p.add_argument(
        "--paper-corpora",
        type=json.loads,
        default=None,
        help="JSON list: the corpora that are the paper's own (its values stand beside their "
        "rows only); default: every corpus",
    )
    p.add_argument(
        "--confidence-level", type=LEVEL, default=0.95, help="the evaluation's: names the CIs"
    )
    p.add_argument("--csv-out", type=Path, required=True)
    p.add_argument("--md-out", type=Path, required=True)
    p.add_argument("--tex-out", type=Path, required=True)
    p.set_defaults(func=_make_table)

    p = sub.add_parser(
        "plot-evaluation",
        help="Figure 2 (confusions under the interventions) and, given --corruption-curve-out,"
        " Figure 3 (UAR against corruption p) of one (corpus, model)",
    )
    p.add_argument("--metrics", type=Path, required=True)
    p.add_argument("--confusion", type=Path, required=True)
    p.add_argument("--corruption", type=Path, help="required with --corruption-curve-out")
    p.add_argument("--title", required=True)
    p.add_argument(
        "--confidence-level", type=LEVEL, default=0.95, help="the evaluation's: names the CI"
    )
    p.add_argument(
        "--confusions-out", type=Path, nargs="+", required=True, help="Figure 2, a file per format"
    )
    p.add_argument(
        "--corruption-curve-out", type=Path, nargs="*", default=[],
        help="Figure 3, a file per format (none: not drawn)",
    )  # fmt: skip
    p.set_defaults(func=_plot_evaluation)


def _evaluate(args: argparse.Namespace) -> None:
    import numpy as np

    from cueprobe.stats import evaluate
    from cueprobe.summary import answer_alarms
    from cueprobe.summary import cue_use_summary

    manifest = io.read_table(args.manifest, "manifest")
    predictions = {path.stem: io.read_table(path, "predictions") for path in args.predictions}
    ev = evaluate(
        predictions,
        manifest,
        labels=list(args.labels),
        splits=args.splits,
        n_resamples=args.n_resamples,
        confidence_level=args.confidence_level,
        rng=np.random.default_rng([args.seed, EVALUATION_STREAM]),
    )
    for frame, path, kind in (
        (ev.metrics, args.metrics_out, "metrics"),
        (ev.confusion, args.confusion_out, "confusion"),
        (ev.comparisons, args.comparisons_out, "comparisons"),
        (ev.corruption, args.corruption_out, "corruption"),
    ):
        frame.insert(0, "model", args.model)
        frame.insert(0, "corpus", args.corpus)
        io.write_table(frame, path, kind)
    text = cue_use_summary(
        ev.metrics, ev.comparisons, ev.corruption, corpus=args.corpus, model=args.label,
        alpha=args.alpha, confidence_level=args.confidence_level, confusion=ev.confusion,
    )  # fmt: skip
    io.write_text(text, args.summary_out)
    for row in ev.metrics.itertuples():
        if row.condition in ("audio_only", "aligned"):
            log.info(
                "%s %s: UAR %.3f [%.3f, %.3f], unparsed %d/%d",
                row.split, row.condition, row.uar, row.ci_low, row.ci_high, row.n_unparsed, row.n,
            )  # fmt: skip
    for split, alarms in answer_alarms(ev.metrics, ev.confusion).items():
        for alarm in alarms:
            log.warning("%s: %s", split, alarm)
    n_deg = ev.metrics.groupby("split")["n_degenerate"].first()
    if n_deg.any():
        log.warning("resamples lacking a class, per split: %s", n_deg.to_dict())


def _make_table(args: argparse.Namespace) -> None:
    import pandas as pd

    from cueprobe import tables

    metrics = pd.concat([io.read_table(p, "metrics") for p in args.metrics], ignore_index=True)
    comparisons = pd.concat(
        [io.read_table(p, "comparisons") for p in args.comparisons], ignore_index=True
    )
    for flag, frame, key in (
        ("--metrics", metrics, ["corpus", "model", "split", "condition"]),
        ("--comparisons", comparisons, ["corpus", "model", "split", "a", "b"]),
    ):
        twice = frame[frame.duplicated(key)]
        if len(twice):
            raise ValueError(
                f"the {flag} files hold {tuple(twice[key].iloc[0])} ({', '.join(key)}) more "
                "than once: a file given twice, or two evaluations of one (corpus, model)."
            )
    build = tables.table2 if args.table == "II" else tables.table3
    table = build(
        metrics,
        comparisons,
        models=args.models,
        literature=args.literature,
        paper=args.paper,
        paper_corpora=args.paper_corpora,
    )
    title = {
        "II": "UAR without (UAR⁻) and with (UAR⁺) appended concept tokens, dev and test; "
        "Δ = UAR⁺ − UAR⁻.",
        "III": "UAR with/without appended concept tokens, with speaker-clustered bootstrap "
        f"{tables.ci_name(args.confidence_level)}s and exact McNemar p.",
    }[args.table]
    level = {"confidence_level": args.confidence_level}
    # the corpora it reports, as the paper's titles do ("AIBO5 UAR without ...")
    title = f"{', '.join(sorted(metrics['corpus'].unique()))}: {title}"
    io.write_text(tables.to_csv(table), args.csv_out)
    md = tables.to_markdown(table, kind=args.table, title=f"Table {args.table}. {title}", **level)
    io.write_text(md, args.md_out)
    tex = tables.to_latex(
        table, kind=args.table, title=title, label=f"tab:table{args.table}", **level
    )
    io.write_text(tex, args.tex_out)
    log.info("Table %s: %d rows", args.table, len(table))


def _plot_evaluation(args: argparse.Namespace) -> None:
    from cueprobe.figures import save_figure
    from cueprobe.figures.confusions import plot_confusions
    from cueprobe.figures.corruption_curve import plot_corruption_curve

    if args.corruption_curve_out and args.corruption is None:
        raise ValueError("--corruption-curve-out needs --corruption (the evaluation's curve).")
    metrics = io.read_table(args.metrics, "metrics")
    fig = plot_confusions(io.read_table(args.confusion, "confusion"), metrics, title=args.title)
    save_figure(fig, args.confusions_out)
    if args.corruption_curve_out:
        corruption = io.read_table(args.corruption, "corruption")
        fig = plot_corruption_curve(
            corruption, metrics, title=args.title, confidence_level=args.confidence_level
        )
        save_figure(fig, args.corruption_curve_out)
    log.info("wrote %s", ", ".join(map(str, [*args.confusions_out, *args.corruption_curve_out])))
