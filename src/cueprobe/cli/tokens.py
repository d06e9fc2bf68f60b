"""Subcommands ``tokens`` (concept tokens + bin edges) and ``plot-token-distribution`` (Figure 1)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cueprobe import io
from cueprobe.cli import labels_json
from cueprobe.cli import nonempty

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the tokens-stage subcommands."""
    p = sub.add_parser("tokens", help="concept tokens (Table I) with edges fitted on the corpus")
    p.add_argument("--features", type=Path, required=True, help="features.parquet")
    p.add_argument("--manifest", type=Path, required=True, help="manifest.parquet")
    p.add_argument("--n-bins", type=int, required=True)
    p.add_argument("--fit-on", choices=["all", "train"], required=True)
    p.add_argument(
        "--gender-specific", type=json.loads, default=[], help='JSON list, e.g. ["PITCH"]'
    )
    p.add_argument("--vq-threshold", type=float, required=True)
    p.add_argument("--vq-unvoiced-floor", type=float, required=True)
    p.add_argument(
        "--vq-order", type=json.loads, required=True, help="JSON list of VOICE_QUALITY values"
    )
    p.add_argument("--template", required=True, help="one concept, e.g. '{concept}={value}'")
    p.add_argument("--separator", type=nonempty, required=True)
    p.add_argument("--out", type=Path, required=True, help="tokens.parquet")
    p.add_argument("--edges-out", type=Path, required=True, help="token_edges.json")
    p.set_defaults(func=_tokens)

    p = sub.add_parser("plot-token-distribution", help="Figure 1: token distributions per emotion")
    p.add_argument("--tokens", type=Path, required=True, help="tokens.parquet")
    p.add_argument("--edges", type=Path, required=True, help="token_edges.json (for n_bins)")
    p.add_argument("--manifest", type=Path, required=True, help="manifest.parquet")
    p.add_argument(
        "--labels", type=labels_json, default=None, help="JSON list or {label: synonyms}: row order"
    )
    p.add_argument("--title", required=True)
    p.add_argument(
        "--out", type=Path, nargs="+", required=True, help="figure files, one per format"
    )
    p.set_defaults(func=_plot)


def _tokens(args: argparse.Namespace) -> None:
    from cueprobe.tokens import VoiceQualityRule
    from cueprobe.tokens import tokenize

    features = io.read_table(args.features, "features")
    manifest = io.read_table(args.manifest, "manifest")
    rule = VoiceQualityRule(
        threshold=args.vq_threshold,
        unvoiced_floor=args.vq_unvoiced_floor,
        order=tuple(args.vq_order),
    )
    tokens, edges = tokenize(
        features,
        manifest,
        n_bins=args.n_bins,
        fit_on=args.fit_on,
        gender_specific=args.gender_specific,
        voice_quality=rule,
        template=args.template,
        separator=args.separator,
    )
    io.write_table(tokens, args.out, "tokens")
    io.write_json(edges.to_dict(), args.edges_out)
    log.info(
        "tokens for %d utterances (edges fitted on %d, fit_on=%s)",
        len(tokens),
        edges.n_fit,
        edges.fit_on,
    )
    for flag, n in tokens.loc[tokens["flag"] != "", "flag"].value_counts().items():
        log.warning("flagged %d: %s", n, flag)
    log.info("VOICE_QUALITY: %s", tokens["VOICE_QUALITY"].value_counts().to_dict())


def _plot(args: argparse.Namespace) -> None:
    from cueprobe.figures import save_figure
    from cueprobe.figures.token_distribution import plot_token_distribution
    from cueprobe.figures.token_distribution import token_frequencies
    from cueprobe.figures.token_distribution import vocabularies

    tokens = io.read_table(args.tokens, "tokens")
    manifest = io.read_table(args.manifest, "manifest")
    # the figure is of the corpus: an inner join drew it from whatever the two shared
    pair = ((manifest, args.manifest), (tokens, args.tokens))
    for (table, path), (other, other_path) in (pair, pair[::-1]):
        absent = table.loc[~table["utt_id"].isin(other["utt_id"]), "utt_id"]
        if len(absent):
            raise ValueError(
                f"{other_path} lacks {len(absent)} of the {len(table)} utterance(s) in {path} "
                f"({', '.join(map(repr, absent.head(3)))}): tokens and manifest are of "
                "different runs."
            )
    edges = io.read_json(args.edges)
    if not isinstance(edges, dict) or "n_bins" not in edges:
        raise ValueError(f"{args.edges} is not a token edges file (it has no n_bins).")
    n_bins = int(edges["n_bins"])
    labels = list(args.labels) if args.labels else sorted(manifest["label"].unique())
    freqs = token_frequencies(tokens, manifest, vocabularies=vocabularies(n_bins), labels=labels)
    fig = plot_token_distribution(freqs, title=args.title)
    save_figure(fig, args.out)  # drawn once, saved in each format
    log.info("wrote %s", ", ".join(map(str, args.out)))
