"""Subcommands ``features`` (eGeMAPS LLD means of one shard) and ``gather-features``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from cueprobe import io
from cueprobe.cli import COUNT
from cueprobe.cli import NATURAL
from cueprobe.cli import number

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the features-stage subcommands."""
    p = sub.add_parser("features", help="eGeMAPSv02 LLD means of one shard of the manifest")
    p.add_argument("--manifest", type=Path, required=True, help="manifest.parquet")
    p.add_argument(
        "--shard", type=NATURAL, required=True, help="shard index, 0 <= shard < n-shards"
    )
    p.add_argument("--n-shards", type=COUNT, required=True)
    p.add_argument("--min-duration-s", type=number(float, low=0), required=True)
    p.add_argument("--threads", type=COUNT, default=1, help="files processed in parallel")
    p.add_argument("--out", type=Path, required=True, help="features/{shard}.parquet")
    p.set_defaults(func=_features)

    p = sub.add_parser("gather-features", help="concatenate shard tables in manifest order")
    p.add_argument("--manifest", type=Path, required=True, help="manifest.parquet")
    p.add_argument("--out", type=Path, required=True, help="features.parquet")
    p.add_argument("shards", type=Path, nargs="+", help="features/{shard}.parquet files")
    p.set_defaults(func=_gather)


def _features(args: argparse.Namespace) -> None:
    from cueprobe.features import extract_features
    from cueprobe.features import select_shard

    manifest = io.read_table(args.manifest, "manifest")
    rows = select_shard(manifest, shard=args.shard, n_shards=args.n_shards)
    log.info("shard %d/%d: %d of %d files", args.shard, args.n_shards, len(rows), len(manifest))
    table = extract_features(rows, min_duration_s=args.min_duration_s, n_workers=args.threads)
    io.write_table(table, args.out, "features")
    for status, n in table["status"].value_counts().items():
        log.info("status %s: %d", status, n)


def _gather(args: argparse.Namespace) -> None:
    manifest = io.read_table(args.manifest, "manifest")
    parts = [io.read_table(p, "features") for p in args.shards]
    table = (
        pd.concat([p for p in parts if len(p)], ignore_index=True)
        if any(map(len, parts))
        else parts[0]
    )
    io.validate_table(table, "features", source="gathered shards")  # duplicates across shards
    missing = sorted(set(manifest["utt_id"]) - set(table["utt_id"]))
    extra = sorted(set(table["utt_id"]) - set(manifest["utt_id"]))
    if missing or extra:
        raise ValueError(
            f"shards do not cover the manifest {args.manifest}: {len(missing)} missing "
            f"(first {missing[:5]}), {len(extra)} not in it (first {extra[:5]})."
        )
    order = pd.Index(table["utt_id"]).get_indexer(manifest["utt_id"])
    table = table.iloc[order].reset_index(drop=True)
    io.write_table(table, args.out, "features")
    log.info(
        "gathered %d files from %d shards: %s",
        len(table),
        len(parts),
        table["status"].value_counts().to_dict(),
    )
