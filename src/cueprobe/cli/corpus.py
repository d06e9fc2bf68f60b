"""Subcommands ``demo`` (generate a demo tree) and ``manifest`` (read a corpus)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from cueprobe import io
from cueprobe.cli import COUNT
from cueprobe.cli import NATURAL
from cueprobe.cli import labels_json

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the corpus-stage subcommands."""
    p = sub.add_parser("demo", help="generate a demo corpus tree in an official layout")
    p.add_argument("--layout", choices=["iemocap", "aibo"], required=True)
    p.add_argument("--root", type=Path, required=True, help="folder to write the tree into")
    p.add_argument("--n-per-speaker", type=COUNT, required=True)
    p.add_argument("--seed", type=NATURAL, required=True)
    p.set_defaults(func=_demo)

    p = sub.add_parser("manifest", help="read a corpus into manifest + excluded tables")
    p.add_argument("--adapter", choices=["iemocap", "aibo", "csv"], required=True)
    p.add_argument("--root", type=Path, required=True, help="corpus root (csv: the sheet)")
    p.add_argument("--labels", type=labels_json, default=None, help="JSON {label: [synonyms]}")
    p.add_argument("--dev-speakers", type=json.loads, default=None, help="JSON list (aibo)")
    p.add_argument("--n-dev-speakers", type=NATURAL, default=2)
    p.add_argument("--out", type=Path, required=True, help="manifest.parquet")
    p.add_argument("--excluded-out", type=Path, required=True, help="excluded.parquet")
    p.set_defaults(func=_manifest)


def _demo(args: argparse.Namespace) -> None:
    from cueprobe.corpora import demo  # scipy.signal: imported only when generating

    make = demo.make_demo_iemocap if args.layout == "iemocap" else demo.make_demo_aibo
    params = make(args.root, n_per_speaker=args.n_per_speaker, seed=args.seed)
    log.info("wrote %d demo utterances (%s layout) under %s", len(params), args.layout, args.root)


def _manifest(args: argparse.Namespace) -> None:
    from cueprobe.corpora import build_manifest
    from cueprobe.corpora import exclusion_counts

    manifest, excluded = build_manifest(
        args.adapter,
        args.root,
        labels=args.labels,
        dev_speakers=args.dev_speakers,
        n_dev_speakers=args.n_dev_speakers,
    )
    io.write_table(manifest, args.out, "manifest")
    io.write_table(excluded, args.excluded_out, "excluded")
    counts = manifest.groupby(["split", "label"]).size().to_dict()
    log.info("kept %d utterances %s; excluded %d", len(manifest), counts, len(excluded))
    for reason, n in exclusion_counts(excluded).items():
        log.info("excluded %d: %s", n, reason)
