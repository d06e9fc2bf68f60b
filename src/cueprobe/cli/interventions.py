"""Subcommand ``condition``: token-intervention condition tables of one corpus."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cueprobe import io
from cueprobe.cli import NATURAL
from cueprobe.cli import nonempty
from cueprobe.cli import one_per

log = logging.getLogger(__name__)

#: stage id in the seed sequence, so that no two stages share random streams
STAGE_SEED = 3


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``condition`` subcommand."""
    p = sub.add_parser(
        "condition", help="build intervention conditions (token block per utterance)"
    )
    p.add_argument(
        "--name",
        nargs="+",
        required=True,
        help="one or more of audio_only, aligned, conflict, shuffle_s<k>, corrupt_p<pct>_s<k>",
    )
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--tokens", type=Path, help="tokens.parquet (not needed for audio_only)")
    p.add_argument("--n-bins", type=int, help="token levels per ordinal concept")
    p.add_argument("--template", help="one concept, e.g. '{concept}={value}'")
    p.add_argument("--separator", type=nonempty, help="between concepts, e.g. '; '")
    p.add_argument("--voice-quality-map", type=json.loads, help="JSON {value: opposite}")
    p.add_argument(
        "--voice-quality-order",
        type=json.loads,
        help="JSON list: the tokens stage's VOICE_QUALITY rule order (config"
        " tokens.voice_quality.order); corrupt and conflict use only the values it can"
        " give (default: all six)",
    )
    p.add_argument("--seed", type=NATURAL, help="root seed (config `seed`)")
    p.add_argument("--out", type=Path, nargs="+", required=True, help="one per --name")
    p.set_defaults(func=_condition)


def _condition(args: argparse.Namespace) -> None:
    import functools

    import numpy as np

    from cueprobe.interventions import build_condition
    from cueprobe.interventions import kept_aligned
    from cueprobe.interventions import parse_condition
    from cueprobe.tokens import voice_quality_values

    outs = one_per(args.out, args.name, flag="--out", per="--name")
    kinds = [parse_condition(name) for name in args.name]  # fails on an unknown name first
    manifest = io.read_table(args.manifest, "manifest")
    tokens = None
    if any(kind != "audio_only" for kind, _, _ in kinds):
        needed = ["tokens", "n_bins", "template", "separator", "voice_quality_map", "seed"]
        absent = [f"--{a.replace('_', '-')}" for a in needed if getattr(args, a) is None]
        if absent:
            raise ValueError(f"condition(s) {args.name} need {' '.join(absent)}")
        tokens = io.read_table(args.tokens, "tokens")
        missing = sorted(set(manifest["utt_id"]) - set(tokens["utt_id"]))
        if missing:
            raise ValueError(
                f"{args.tokens}: {len(missing)} manifest utterance(s) have no tokens: {missing[:5]}"
            )
        tokens = tokens.set_index("utt_id").loc[manifest["utt_id"]].reset_index()
    build = functools.partial(
        build_condition,
        n_bins=args.n_bins,
        groups=manifest["split"].tolist(),  # shuffle within each split: the evaluated set
        voice_quality_map=args.voice_quality_map,
        voice_quality=voice_quality_values(args.voice_quality_order),
        template=args.template,
        separator=args.separator,
    )
    aligned_strings = None  # aligned's token strings, built once for the fixed-point counts
    for name, (kind, _, seed), out in zip(args.name, kinds, outs, strict=True):
        # one stream per (root seed, stage, kind, condition seed). Corrupt streams do not
        # depend on p, so corruptions are nested in p (common random numbers; a CLI test
        # checks it). Nor do they depend on the corpus: two corpora with the same split
        # sizes get the same permutations, two of one size the same corruption draws.
        # Harmless: every analysis is within one corpus.
        rng = None
        if seed is not None:
            rng = np.random.default_rng(
                [args.seed, STAGE_SEED, 1 if kind == "shuffle" else 2, seed]
            )
        table = build(name, manifest[["utt_id"]] if kind == "audio_only" else tokens, rng=rng)
        io.write_table(table, out, "conditions")
        log.info("condition %s: %d utterances -> %s", name, len(table), out)
        if kind == "aligned":
            aligned_strings = table["token_string"].to_numpy()
        elif kind != "audio_only":
            if aligned_strings is None:
                aligned_strings = build("aligned", tokens, rng=None)["token_string"].to_numpy()
            # a shuffle's fixed points (certain in a one-utterance split), or a draw that
            # lands on the original tokens, leave an utterance its own token block
            log.info(
                "%s: %d of %d utterances keep their aligned token block",
                name,
                kept_aligned(table["token_string"], aligned_strings),
                len(table),
            )
