"""Subcommands ``train-reference`` (fit the reference model) and ``infer`` (query a model).

``infer`` writes as it goes: every finished batch is appended to ``<out>.part.jsonl`` and
fsync'd, so a killed job (SIGKILL, preemption, a down server) loses at most the batch in
flight. Run again with the same arguments, it skips the utterances already answered (with
the same prompt, model and revision), then writes the predictions table atomically and
removes the part file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cueprobe import io

log = logging.getLogger(__name__)

#: second component of every seed sequence built here (keeps streams apart from other stages)
_STAGE = 4


def register(sub: argparse._SubParsersAction) -> None:
    """Add the inference-stage subcommands."""
    p = sub.add_parser("train-reference", help="fit a reference classifier on the train split")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--tokens", type=Path, default=None, help="tokens.parquet; omit: audio-only")
    p.add_argument("--labels", type=json.loads, required=True, help="JSON {label: [synonyms]}")
    p.add_argument("--train-splits", type=json.loads, default=["train"], help="JSON list")
    p.add_argument("--n-bins", type=int, default=None, help="with --tokens")
    p.add_argument("--token-template", default=None, help="with --tokens")
    p.add_argument("--token-separator", default=None, help="with --tokens")
    p.add_argument("--token-dropout", type=float, default=0.0, help="with --tokens")
    p.add_argument("--token-corrupt", type=float, default=0.0, help="with --tokens")
    p.add_argument("--C", type=float, required=True, dest="C")
    p.add_argument("--n-mels", type=int, default=40)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="classifier file (.pkl)")
    p.set_defaults(func=_train_reference)

    p = sub.add_parser("infer", help="answer one condition's prompts with one model")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--condition", type=Path, required=True, help="conditions/{condition}.parquet")
    p.add_argument("--model-config", type=json.loads, required=True, help="JSON model entry")
    p.add_argument("--labels", type=json.loads, required=True, help="JSON {label: [synonyms]}")
    p.add_argument("--splits", type=json.loads, required=True, help='JSON list, e.g. ["test"]')
    p.add_argument("--prompts", type=json.loads, required=True, help="JSON config `prompts`")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument(
        "--model-files", type=Path, nargs="*", default=[], help="reference: trained classifiers"
    )
    p.add_argument("--api-key-env", default=None, help="environment variable holding the key")
    p.add_argument("--batch-size", type=int, default=None, help="override the backend's")
    p.add_argument("--base-url", default=None, help="openai: server URL ('none': unset)")
    p.add_argument("--concurrency", type=int, default=None, help="openai: calls in flight")
    p.add_argument("--max-retries", type=int, default=None, help="openai: retries per call")
    p.add_argument("--timeout-s", type=float, default=None, help="openai: per-call timeout")
    p.add_argument("--device", default=None, help="torch device (default: CUDA if present)")
    p.add_argument("--shard", type=int, default=0, help="answer only this utterance shard")
    p.add_argument("--n-shards", type=int, default=1, help="shards of the evaluated utterances")
    p.add_argument("--out", type=Path, required=True, help="predictions parquet")
    p.add_argument(
        "--check-out", type=Path, default=None, help="sanity-check JSON (not for a shard)"
    )
    p.set_defaults(func=_infer)

    p = sub.add_parser(
        "gather-predictions", help="join the utterance shards of one condition's predictions"
    )
    p.add_argument("--parts", type=Path, nargs="+", required=True, help="shard tables")
    p.add_argument("--out", type=Path, required=True, help="predictions parquet")
    p.add_argument("--check-out", type=Path, required=True, help="sanity-check JSON")
    p.set_defaults(func=_gather)


# -- train-reference -----------------------------------------------------------------------


def _train_reference(args: argparse.Namespace) -> None:
    from cueprobe.backends import reference
    from cueprobe.inference import select_splits

    manifest = io.read_table(args.manifest, "manifest")
    train = select_splits(manifest, args.train_splits).sort_values("utt_id", kind="stable")
    tokens = None
    if args.tokens is not None:
        table = io.read_table(args.tokens, "tokens").set_index("utt_id")
        absent = train.loc[~train["utt_id"].isin(table.index), "utt_id"]
        if len(absent):
            raise ValueError(
                f"{len(absent)} training utterance(s) have no tokens in {args.tokens}: "
                + ", ".join(map(repr, absent.head(5)))
            )
        tokens = table.loc[train["utt_id"]].reset_index()
    embeddings = np.vstack([reference.embed_file(p, n_mels=args.n_mels) for p in train["path"]])
    rng = np.random.default_rng([args.seed, _STAGE])
    clf = reference.fit_reference(
        embeddings,
        train["label"].tolist(),
        labels=list(args.labels),
        tokens=tokens,
        n_bins=args.n_bins,
        token_template=args.token_template,
        token_separator=args.token_separator,
        token_dropout=args.token_dropout,
        token_corrupt=args.token_corrupt,
        C=args.C,
        rng=rng,
    )
    train_acc = float(
        np.mean(np.asarray(clf.predict(embeddings, _token_rows(tokens))) == train["label"])
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    clf.save(tmp)
    os.replace(tmp, args.out)  # atomic: a killed job leaves no half-written model
    log.info(
        "trained the %s reference classifier on %d utterances (%s); training accuracy %.3f",
        clf.kind,
        len(train),
        ", ".join(args.train_splits),
        train_acc,
    )


def _token_rows(tokens) -> list[dict[str, Any]]:
    from cueprobe.interventions import CONCEPT_COLUMNS

    return [] if tokens is None else tokens[list(CONCEPT_COLUMNS)].to_dict("records")


# -- infer ---------------------------------------------------------------------------------


def _part_path(out: Path) -> Path:
    return out.with_name(out.name + ".part.jsonl")


def _read_part(path: Path, header: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Rows answered by an earlier, interrupted run (last row per utt_id wins).

    A torn last line (killed mid-write) is cut off; a part file of another model,
    revision or decoding is discarded.
    """
    if not path.exists():
        return {}
    data = path.read_bytes()
    if not data.endswith(b"\n"):  # killed mid-write: drop the torn line
        data = data[: data.rfind(b"\n") + 1]
        with open(path, "r+b") as f:
            f.truncate(len(data))
    lines = data.decode().splitlines()
    if not lines or json.loads(lines[0]).get("header") != header:
        log.warning("discarding %s: written by another model, revision or decoding", path)
        path.unlink()
        return {}
    rows = {}
    for line in lines[1:]:
        row = json.loads(line)
        rows[row["utt_id"]] = row
    return rows


class _PartWriter:
    """Append answered batches to the part file, fsync'd per batch."""

    def __init__(self, path: Path, header: dict[str, str], shas: dict[str, str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self.shas = shas
        if new:
            self._write([{"header": header}])

    def _write(self, rows: Sequence[dict[str, Any]]) -> None:
        self.f.write("".join(json.dumps(r) + "\n" for r in rows))
        self.f.flush()
        os.fsync(self.f.fileno())

    def __call__(self, batch, answers) -> None:
        self._write(
            [
                {"utt_id": r.utt_id, "prompt_sha": self.shas[r.utt_id], "raw_output": a}
                for r, a in zip(batch, answers, strict=True)
            ]
        )

    def close(self) -> None:
        self.f.close()


def _infer(args: argparse.Namespace) -> None:
    from cueprobe.backends.factory import make_backend
    from cueprobe.features import select_shard
    from cueprobe.inference import build_requests
    from cueprobe.inference import predictions_table
    from cueprobe.inference import run_requests
    from cueprobe.inference import to_requests
    from cueprobe.prompts import PromptTemplates

    cfg = dict(args.model_config)
    for key in ("concurrency", "max_retries", "timeout_s", "batch_size", "base_url"):
        if getattr(args, key) not in (None, "none"):
            cfg[key] = getattr(args, key)
    if cfg.get("backend") == "reference" and ({"train", "all"} & set(args.splits)):
        raise ValueError(
            f"the reference model is trained on the train split and must not be scored on it; "
            f"evaluated splits {args.splits} include it (set zero_shot: false for this model)."
        )
    templates = PromptTemplates(**args.prompts)
    manifest = io.read_table(args.manifest, "manifest")
    condition = io.read_table(args.condition, "conditions")
    frame = build_requests(
        manifest, condition, templates=templates, labels=list(args.labels), splits=args.splits
    )
    if args.n_shards > 1:
        frame = select_shard(frame, shard=args.shard, n_shards=args.n_shards)
        log.info("shard %d of %d: %d utterances", args.shard, args.n_shards, len(frame))
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    backend = make_backend(
        cfg,
        system_prompt=templates.system,
        reference_files=args.model_files,
        api_key=api_key,
        seed=args.seed,
        device=args.device,
    )
    if cfg["backend"] == "reference" and backend.tokens is None:
        with_tokens = condition["token_string"].notna()
        if with_tokens.any():
            raise ValueError(
                f"{args.condition} carries token blocks ({int(with_tokens.sum())} rows) but no "
                "tokens classifier was given (--model-files)."
            )
    header = dataclasses.asdict(backend.info)
    part = _part_path(args.out)
    shas = dict(zip(frame["utt_id"], frame["prompt_sha"], strict=True))
    answered = {
        u: row["raw_output"]
        for u, row in _read_part(part, header).items()
        if shas.get(u) == row["prompt_sha"]
    }
    writer = _PartWriter(part, header, shas)
    try:
        run_requests(
            backend,
            to_requests(frame),
            batch_size=backend.batch_size,
            done=answered,
            on_batch=writer,
        )
    except ConnectionError as err:  # openai: the server stayed down; the part file is kept
        raise SystemExit(f"cueprobe infer: error: {err}") from None
    finally:
        writer.close()
    answers = {
        u: row["raw_output"]
        for u, row in _read_part(part, header).items()
        if shas.get(u) == row["prompt_sha"]
    }
    predictions = predictions_table(frame, answers, info=backend.info, labels=args.labels)
    io.write_table(predictions, args.out, "predictions")
    if args.check_out is not None:
        _write_check(predictions, args.out, args.check_out)
    part.unlink()
    status = predictions["parse_status"].value_counts().to_dict()
    log.info("%d predictions -> %s; parse status %s", len(predictions), args.out, status)


def _write_check(predictions, out: Path, check_out: Path) -> None:
    """The audio-dependence check of a whole condition; warns loudly when it fails."""
    from cueprobe.inference import audio_dependence

    check = audio_dependence(predictions)
    if check.invariant:
        log.warning(
            "PREDICTIONS DO NOT VARY WITH THE AUDIO (%s): %s. Is the audio reaching the model?",
            out,
            check.reason,
        )
    status = predictions["parse_status"].value_counts().to_dict()
    model_id = predictions["model_id"].iloc[0] if len(predictions) else ""
    io.write_json(
        dataclasses.asdict(check) | {"parse_status": status, "model_id": model_id}, check_out
    )


def _gather(args: argparse.Namespace) -> None:
    import pandas as pd

    parts = [io.read_table(p, "predictions") for p in args.parts]
    predictions = pd.concat(parts, ignore_index=True)
    # same order as an unsharded job (requests are sorted by utt_id); duplicates fail here
    predictions = predictions.sort_values("utt_id", ignore_index=True)
    io.write_table(predictions, args.out, "predictions")
    _write_check(predictions, args.out, args.check_out)
    log.info("%d predictions from %d shards -> %s", len(predictions), len(parts), args.out)
