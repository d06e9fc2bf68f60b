"""Subcommands ``train-reference`` (fit the reference model) and ``infer`` (query a model).

``infer`` answers one or more conditions in one process (the model is loaded once) and
asks each distinct model call once (:func:`cueprobe.inference.unique_requests`). It
writes as it goes: every finished batch is appended to the answer journal (``--journal``)
and fsync'd, so a killed job (SIGKILL, preemption, a down server) loses at most the
batch in flight. The journal is kept: a later run with the same model, revision and
decoding skips every call already answered (same utterance, prompt and audio bytes),
so a restart, or a grid that gains a condition, only asks what is new. Predictions
tables are written atomically at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import re
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cueprobe import io
from cueprobe.backends.base import BackendInfo
from cueprobe.cli import COUNT
from cueprobe.cli import NATURAL
from cueprobe.cli import POSITIVE
from cueprobe.cli import SHARE
from cueprobe.cli import labels_json
from cueprobe.cli import nonempty
from cueprobe.cli import one_per

log = logging.getLogger(__name__)

#: second component of every seed sequence built here (keeps streams apart from other stages)
_STAGE = 4


def register(sub: argparse._SubParsersAction) -> None:
    """Add the inference-stage subcommands."""
    p = sub.add_parser(
        "embed-reference", help="the reference model's audio embedding of every utterance"
    )
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--n-mels", type=COUNT, default=40)
    p.add_argument("--out", type=Path, required=True, help="embeddings parquet")
    p.set_defaults(func=_embed_reference)

    p = sub.add_parser("train-reference", help="fit a reference classifier on the train split")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument(
        "--embeddings", type=Path, default=None, help="from embed-reference; omit: read the audio"
    )
    p.add_argument("--tokens", type=Path, default=None, help="tokens.parquet; omit: audio-only")
    p.add_argument("--labels", type=labels_json, required=True, help="JSON {label: [synonyms]}")
    p.add_argument("--train-splits", type=json.loads, default=["train"], help="JSON list")
    p.add_argument("--n-bins", type=int, default=None, help="with --tokens")
    p.add_argument("--token-template", default=None, help="with --tokens")
    p.add_argument("--token-separator", type=nonempty, default=None, help="with --tokens")
    p.add_argument("--token-dropout", type=SHARE, default=0.3, help="with --tokens")
    p.add_argument("--token-corrupt", type=SHARE, default=0.3, help="with --tokens")
    p.add_argument(
        "--voice-quality-order",
        type=json.loads,
        default=None,
        help="with --tokens: JSON list, the VOICE_QUALITY rule order (config "
        "tokens.voice_quality.order); corruptions draw only the values it can give",
    )
    p.add_argument("--C", type=POSITIVE, required=True, dest="C")
    p.add_argument(
        "--class-weight",
        choices=["balanced", "none"],
        default="balanced",
        help="balanced: each utterance weighs n / (k n_class), as scored by UAR",
    )
    p.add_argument("--n-mels", type=COUNT, default=40)
    p.add_argument(
        "--seed",
        type=NATURAL,
        default=0,
        help="root seed: the token augmentation's draws (--tokens)",
    )
    p.add_argument("--out", type=Path, required=True, help="classifier file (.pkl)")
    p.set_defaults(func=_train_reference)

    p = sub.add_parser("infer", help="answer the prompts of one or more conditions with one model")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument(
        "--condition",
        type=Path,
        nargs="+",
        required=True,
        help="conditions/{condition}.parquet, one or more (the name is the file stem)",
    )
    p.add_argument("--model-config", type=json.loads, required=True, help="JSON model entry")
    p.add_argument("--labels", type=labels_json, required=True, help="JSON {label: [synonyms]}")
    p.add_argument("--splits", type=json.loads, required=True, help='JSON list, e.g. ["test"]')
    p.add_argument("--prompts", type=json.loads, required=True, help="JSON config `prompts`")
    p.add_argument(
        "--model-files", type=Path, nargs="*", default=[], help="reference: trained classifiers"
    )
    p.add_argument("--api-key-env", default=None, help="environment variable holding the key")
    p.add_argument("--batch-size", type=COUNT, default=None, help="override the backend's")
    p.add_argument("--base-url", default=None, help="openai: server URL ('none': unset)")
    p.add_argument("--concurrency", type=COUNT, default=None, help="openai: calls in flight")
    p.add_argument("--max-retries", type=NATURAL, default=None, help="openai: retries per call")
    p.add_argument(
        "--timeout-s",
        type=POSITIVE,
        default=None,
        help="openai: per-call timeout",
    )
    p.add_argument("--device", default=None, help="torch device (default: CUDA if present)")
    p.add_argument("--shard", type=NATURAL, default=0, help="answer only this utterance shard")
    p.add_argument("--n-shards", type=COUNT, default=1, help="shards of the evaluated utterances")
    p.add_argument(
        "--out",
        type=Path,
        nargs="+",
        required=True,
        help="predictions parquet, one per condition; with --n-shards > 1 one shard table"
        " of every condition (for gather-predictions)",
    )
    p.add_argument(
        "--check-out", type=Path, nargs="*", default=[], help="sanity-check JSON per condition"
    )
    p.add_argument(
        "--journal",
        type=Path,
        default=None,
        help="answer journal: every model answer, appended as it comes (resume and reuse);"
        " default <first output>.answers.jsonl",
    )
    p.set_defaults(func=_infer)

    p = sub.add_parser(
        "gather-predictions", help="join utterance shards into one predictions table per condition"
    )
    p.add_argument("--parts", type=Path, nargs="+", required=True, help="shard tables")
    p.add_argument("--condition", nargs="+", required=True, help="condition names")
    p.add_argument("--out", type=Path, nargs="+", required=True, help="parquet per condition")
    p.add_argument("--check-out", type=Path, nargs="+", required=True, help="JSON per condition")
    p.set_defaults(func=_gather)


# -- embed-reference / train-reference ----------------------------------------------------


def _embed_reference(args: argparse.Namespace) -> None:
    from cueprobe.backends import reference

    manifest = io.read_table(args.manifest, "manifest")
    table = reference.embedding_table(
        manifest["utt_id"].tolist(), manifest["path"].tolist(), n_mels=args.n_mels
    )
    missing = int((~reference.finite_rows(table.drop(columns="utt_id").to_numpy())).sum())
    if len(table) and missing == len(table):  # a moved or unmounted corpus, not bad files
        raise ValueError(
            f"no audio file of {args.manifest} could be read (the first: "
            f"{manifest['path'].iloc[0]}): was the corpus moved, or is its disk not mounted?"
        )
    io.write_table(table, args.out, "embeddings")
    log.info(
        "%d embeddings (%d values each; %d NaN: unreadable audio, left out of training and "
        "answered with an error answer) -> %s",
        len(table), table.shape[1] - 1, missing, args.out,
    )  # fmt: skip


def _train_reference(args: argparse.Namespace) -> None:
    from cueprobe.backends import reference
    from cueprobe.inference import select_splits
    from cueprobe.tokens import voice_quality_values

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
    if args.embeddings is not None:
        embeddings = reference.embeddings_of(
            io.read_table(args.embeddings, "embeddings"),
            train["utt_id"],
            n_mels=args.n_mels,
            source=str(args.embeddings),
        )
    else:
        embeddings = np.vstack([reference.embed_file(p, n_mels=args.n_mels) for p in train["path"]])
    ok = reference.finite_rows(embeddings)
    if not ok.all():  # unreadable audio: no embedding (NaN), as no features
        left = train["utt_id"][~ok]
        log.warning(
            "%d training utterance(s) left out: no audio embedding (unreadable audio%s): %s",
            len(left),
            f", NaN in {args.embeddings}" if args.embeddings is not None else "",
            ", ".join(map(repr, left.head(5))),
        )
        train, embeddings = train[ok].reset_index(drop=True), embeddings[ok]
        tokens = None if tokens is None else tokens[ok].reset_index(drop=True)
        if not len(train):
            raise ValueError("no training utterance has an audio embedding: nothing to train on.")
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
        class_weight=None if args.class_weight == "none" else args.class_weight,
        rng=rng,
        voice_quality=voice_quality_values(args.voice_quality_order),
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


class _Answered:
    """A backend whose every request the answer journal holds: its header, no model."""

    def __init__(self, info: BackendInfo, batch_size: int) -> None:
        self.info = info
        self.batch_size = batch_size

    def generate(self, requests: Sequence[Any]) -> list[str]:
        raise AssertionError("every request was answered in the journal")  # pragma: no cover


def _setup_header(path: Path, setup: dict[str, Any] | None) -> dict[str, str] | None:
    """The header the journal (or a shard-layout sibling) last recorded under ``setup``.

    A ``transformers`` model's header (the commit, the dtype it got, its stop tokens)
    needs the loaded model; its set-up (:func:`cueprobe.backends.hf.load_setup`) does not,
    and the journal records it beside the header. So a job whose every request is
    answered under that header (a new ``answer_pattern``, a forced re-run to re-parse, a
    param change) neither loads a 7B model nor needs its weights on the node. Only the
    header lines are parsed.
    """
    if setup is None:
        return None
    found = None
    for p in (*_sibling_journals(path), path):  # this job's own journal last: it wins
        if p.exists():
            for number, line in _complete_lines(p.read_bytes()):
                if line.startswith(b'{"header"'):
                    row = _journal_row(line, p, number)
                    if row.get("setup") == setup:
                        found = row["header"]
    return found


def _read_journal(
    path: Path, header: dict[str, str], setup: dict[str, Any] | None = None
) -> tuple[dict[str, str | None], bool]:
    """Answers of earlier runs under ``header``, ``answer_key -> raw_output`` (the last
    row of a key wins), and whether the journal's last section is ``header``'s, written
    under ``setup`` (a transformers model's, see :func:`_setup_header`; None for the
    other backends).

    A journal holds a section per setting it was written under (a ``{"header": ...}``
    line, then its answers): a model, revision or decoding changed and changed back finds
    its answers again. The journals of the same group under another shard layout
    (``tokens.jsonl``, ``tokens.shard{k}.jsonl`` beside it) are read too, never written:
    a model sharded anew asks nothing it was asked before. A torn last line (killed
    mid-write) is cut off this job's own journal and skipped in the others.
    """
    answers: dict[str, str | None] = {}
    for other in _sibling_journals(path):
        answers |= _section_answers(_journal_rows(other.read_bytes(), other), header)
    if not path.exists():
        return answers, False
    data = path.read_bytes()
    rows = _journal_rows(data, path)
    if data and not data.endswith(b"\n"):  # killed mid-write: drop the torn line
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
    headers = [row for row in rows if "header" in row]
    old = [row for row in headers if _before_resolution(row["header"], header)]
    for row in old:
        # written before revisions were resolved: its answers are those of the checkpoint
        # the branch named then, taken to be the one in the cache now
        log.warning(
            "%s: answers of revision %r, recorded from now on as %r, the commit it names in "
            "the cache now (delete the journal if the cache was updated since they were asked)",
            path, row["header"]["revision"], header["revision"],
        )  # fmt: skip
        row["header"] = header
    if old:
        io.write_text("".join(json.dumps(row) + "\n" for row in rows), path)
    own = _section_answers(rows, header)
    last = headers[-1]["header"] if headers else None
    if last is not None and last != header and not own:
        log.warning(
            "%s was written under another model, revision or decoding: its answers are kept "
            "for those settings, and these are asked anew",
            path,
        )
    return answers | own, last == header and headers[-1].get("setup") == setup


def _journal_rows(data: bytes, path: Path) -> list[dict[str, Any]]:
    """A journal's rows, without a torn last line; any other damaged line is an error
    naming the journal and the line."""
    return [_journal_row(line, path, number) for number, line in _complete_lines(data)]


def _complete_lines(data: bytes) -> list[tuple[int, bytes]]:
    """A journal's numbered lines, without a torn last line (killed mid-write)."""
    return list(enumerate(data[: data.rfind(b"\n") + 1].splitlines(), start=1))


def _journal_row(line: bytes, path: Path, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(
            f"{path}, line {number}, is damaged ({err}): not a torn last line, which is cut "
            f"off by itself (a disk or copy fault?). Keep the answers before it "
            f"(`head -n {number - 1} {path} > fixed && mv fixed {path}`) or delete the "
            "journal to ask everything again."
        ) from None
    if not isinstance(row, dict):
        raise ValueError(f"{path}, line {number}, is not a journal row: {line[:80]!r}.")
    return row


def _section_answers(
    rows: Sequence[dict[str, Any]], header: dict[str, str]
) -> dict[str, str | None]:
    """Answers of the journal sections written under ``header``."""
    from cueprobe.inference import answer_key

    answers, current = {}, None
    for row in rows:
        if "header" in row:
            current = row["header"]
        elif current == header:
            key = answer_key(row["utt_id"], row["prompt_sha"], row["audio_sha"])
            answers[key] = row["raw_output"]
    return answers


def _sibling_journals(path: Path) -> list[Path]:
    """The journals of ``path``'s group under the other shard layouts (``tokens.jsonl``,
    ``tokens.shard{k}.jsonl``), when ``path`` is one of them."""
    group = path.name.split(".", 1)[0]
    layout = re.compile(rf"{re.escape(group)}(?:\.shard\d+)?\.jsonl")
    if not layout.fullmatch(path.name) or not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if p != path and layout.fullmatch(p.name))


def _before_resolution(old: Any, new: dict[str, str]) -> bool:
    """A journal header written before revisions were resolved: ``main`` where ``new``
    has ``main@<sha>`` (a local folder: ``main@local-<digest>``, also for an adapter in
    the decoding), everything else the same."""
    if not isinstance(old, dict) or old.keys() != new.keys() or old == new:
        return False
    same = all(old[k] == new[k] for k in new if k not in ("revision", "decoding"))
    revision = old["revision"] == new["revision"] or new["revision"].startswith(
        f"{old['revision']}@"
    )
    decoding = re.sub(r"@local-[0-9a-f]{12}$", "", new["decoding"]) == old["decoding"]
    return same and revision and decoding


class _JournalWriter:
    """Append answered batches to the answer journal, fsync'd per batch, and to
    ``answers`` (so the job never reads back what it just wrote); a journal whose last
    section is another header's (or the same header under another set-up) gets a new
    section first."""

    def __init__(
        self,
        path: Path,
        header: dict[str, str],
        answers: dict[str, str | None],
        *,
        in_section: bool,
        setup: dict[str, Any] | None = None,
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self.answers = answers
        if not in_section:  # a section per header; a transformers model's set-up beside it
            self._write([{"header": header} | ({"setup": setup} if setup is not None else {})])

    def _write(self, rows: Sequence[dict[str, Any]]) -> None:
        self.f.write("".join(json.dumps(r) + "\n" for r in rows))
        self.f.flush()
        os.fsync(self.f.fileno())

    def __call__(self, keys, batch, answers) -> None:
        from cueprobe.inference import answer_key_fields

        self._write(
            [answer_key_fields(k) | {"raw_output": a} for k, a in zip(keys, answers, strict=True)]
        )
        self.answers.update(zip(keys, answers, strict=True))

    def close(self) -> None:
        self.f.close()


def _paired(args: argparse.Namespace) -> list[tuple[str, Path, Path | None, Path | None]]:
    """(condition name, condition table, predictions out, check out) per condition."""
    n = len(args.condition)
    if args.n_shards > 1:
        if len(args.out) != 1 or args.check_out:
            raise ValueError(
                "with --n-shards > 1, --out is the one shard table (no --check-out); "
                f"got {len(args.out)} --out and {len(args.check_out)} --check-out path(s)."
            )
        return [(c.stem, c, None, None) for c in args.condition]
    outs = one_per(args.out, args.condition, flag="--out", per="--condition")
    checks = args.check_out or [None] * n
    checks = one_per(checks, args.condition, flag="--check-out", per="--condition")
    return [(c.stem, c, o, k) for c, o, k in zip(args.condition, outs, checks, strict=True)]


@contextlib.contextmanager
def _journal_lock(journal: Path) -> Iterator[None]:
    """Hold ``.<journal>.lock`` (beside it) for the whole job: a second job on the same answers (an
    earlier run's job still running after its Snakemake died, then ``--unlock`` and a
    new run) fails at once, naming the holder, instead of asking every remaining prompt
    a second time beside it."""
    import fcntl
    import socket
    import time

    journal.parent.mkdir(parents=True, exist_ok=True)
    lock = journal.with_name(f".{journal.name}.lock")
    with open(lock, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise OSError(
                f"{journal} is in use by {holder}: another inference job on these answers is "
                "running (one of an earlier run, left after its Snakemake died?). Wait for it "
                "to end, or kill it, then run again."
            ) from None
        except OSError as err:  # a file system without locks (some NFS set-ups)
            log.warning("%s: cannot lock (%s); a second job on it would not be stopped", lock, err)
        else:
            f.seek(0)
            f.truncate()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # UTC: no local zone
            f.write(f"pid {os.getpid()} on {socket.gethostname()} (since {stamp})\n")
            f.flush()
        yield  # closing the file releases the lock (on a crash too)


def _identity(paths: Sequence[Path]) -> dict[str, tuple[int, int]]:
    """(size, mtime) of each file (not the inode: FUSE mounts may renumber it)."""
    out = {}
    for p in paths:
        st = p.stat()
        out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


def _infer(args: argparse.Namespace) -> None:
    if args.shard >= args.n_shards:  # it answered every utterance, unsharded
        raise ValueError(f"--shard {args.shard} must be below --n-shards {args.n_shards}.")
    journal = args.journal or _default_journal(args)
    inputs = [Path(args.manifest), *map(Path, args.condition), *args.model_files]
    with _journal_lock(journal):
        before = _identity(inputs)
        _infer_locked(args, journal, lambda: before == _identity(inputs))


def _infer_locked(args: argparse.Namespace, journal: Path, inputs_unchanged) -> None:
    import pandas as pd

    from cueprobe.backends.factory import load_setup
    from cueprobe.backends.factory import make_backend
    from cueprobe.features import select_shard
    from cueprobe.inference import build_requests
    from cueprobe.inference import predictions_table
    from cueprobe.inference import run_requests
    from cueprobe.inference import unique_requests
    from cueprobe.parsing import compile_answer_pattern
    from cueprobe.prompts import PromptTemplates

    jobs = _paired(args)
    names = [name for name, *_ in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"condition tables with the same name: {sorted(names)}.")
    cfg = dict(args.model_config)
    for key in ("concurrency", "max_retries", "timeout_s", "batch_size", "base_url"):
        if getattr(args, key) not in (None, "none"):
            cfg[key] = getattr(args, key)
    if cfg.get("backend") == "reference" and ({"train", "all"} & set(args.splits)):
        raise ValueError(
            f"the reference model is trained on the train split and must not be scored on it; "
            f"evaluated splits {args.splits} include it (set zero_shot: false for this model)."
        )
    if cfg.get("answer_pattern") is not None:  # before the model answers, not after
        compile_answer_pattern(cfg["answer_pattern"])
    templates = PromptTemplates(**args.prompts)
    manifest = io.read_table(args.manifest, "manifest")
    frames, tables = {}, {}
    for name, path, *_ in jobs:
        tables[name] = io.read_table(path, "conditions")
        try:
            frame = build_requests(
                manifest,
                tables[name],
                templates=templates,
                labels=list(args.labels),
                splits=args.splits,
                token_blocks=name != "audio_only",
            )
        except ValueError as err:
            raise ValueError(f"condition {name!r} ({path}): {err}") from None
        if args.n_shards > 1:
            frame = select_shard(frame, shard=args.shard, n_shards=args.n_shards)
        frames[name] = frame
    if args.n_shards > 1:
        n_utts = len(next(iter(frames.values())))
        log.info("shard %d of %d: %d utterances", args.shard, args.n_shards, n_utts)
    paths = sorted({a for f in frames.values() for a in f["audio_path"]})
    audio_sha = {a: io.file_digest(a) for a in paths}
    requests, keys = unique_requests(frames, audio_sha)
    log.info(
        "%d condition(s), %d prompts, %d distinct model calls",
        len(frames),
        sum(map(len, frames.values())),
        len(requests),
    )
    setup = load_setup(cfg, device=args.device)
    # the device the set-up resolved (a GPU claimed, or the CPU), so it is resolved once
    device = args.device or (setup or {}).get("device")
    backend, header = None, _setup_header(journal, setup)
    if header is not None:
        answers, in_section = _read_journal(journal, header, setup)
        # an error answer (None) is asked again, so it needs the model
        if all(answers.get(k) is not None for k in requests):
            log.info("every request is answered in %s: the model is not loaded", journal)
            backend = _Answered(BackendInfo(**header), cfg.get("batch_size") or 1)
    if backend is None:
        api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
        backend = make_backend(
            cfg,
            system_prompt=templates.system,
            reference_files=args.model_files,
            api_key=api_key,
            device=device,
        )
        if dataclasses.asdict(backend.info) != header:
            header = dataclasses.asdict(backend.info)
            answers, in_section = _read_journal(journal, header, setup)
    if cfg["backend"] == "reference" and backend.tokens is None:
        for name, path, *_ in jobs:
            with_tokens = tables[name]["token_string"].notna()
            if with_tokens.any():
                raise ValueError(
                    f"{path} carries token blocks ({int(with_tokens.sum())} rows) but no "
                    "tokens classifier was given (--model-files)."
                )
    del tables  # what is left of memory goes to the answers (a 32-condition job is large)
    writer = _JournalWriter(journal, header, answers, in_section=in_section, setup=setup)
    # an answer the model or its server failed (None, an `error` row) is asked again on every run
    done = {k for k, a in answers.items() if a is not None}
    try:
        run_requests(backend, requests, batch_size=backend.batch_size, done=done, on_batch=writer)
    except ConnectionError as err:  # openai: the server stayed down; the journal is kept
        raise SystemExit(f"cueprobe infer: error: {err}") from None
    finally:
        writer.close()
    n_rejected = sum(answers[k] is None for k in requests)
    if n_rejected and n_rejected == len(requests):
        raise ValueError(
            f"the model or its server rejected or failed all {n_rejected} model calls (the first "
            "reason is logged above): a set-up fault, such as a vLLM server without audio "
            "support, not an answer. Nothing was written; the next run asks them again."
        )
    if n_rejected:
        log.warning(
            "%d of %d model calls were rejected or failed: their rows are parse status `error` "
            "(wrong); a forced re-run asks only them again",
            n_rejected,
            len(requests),
        )
    del requests
    if not inputs_unchanged():  # a newer run rewrote them while this job was answering
        raise ValueError(
            f"{args.manifest}, a condition table or a model file changed while this job ran "
            "(another run rewrote them?): its answers are in the journal, but predictions of the old "
            "inputs are not written. Run again."
        )
    shard_tables = []
    for name, _, out, check_out in jobs:  # one table at a time: written, then dropped
        frame = frames.pop(name)
        # a plain dict, not Series.map: that would turn a None answer (error) into NaN
        by_utt = {u: answers[k] for u, k in zip(frame["utt_id"], keys.pop(name), strict=True)}
        predictions = predictions_table(
            frame,
            by_utt,
            info=backend.info,
            labels=args.labels,
            answer_pattern=cfg.get("answer_pattern"),
        )
        if args.n_shards > 1:
            shard_tables.append(predictions.assign(condition=name))
            continue
        io.write_table(predictions, out, "predictions")
        if check_out is not None:
            _write_check(predictions, out, check_out)
        status = predictions["parse_status"].value_counts().to_dict()
        log.info("%s: %d predictions -> %s; parse status %s", name, len(predictions), out, status)
    if args.n_shards > 1:
        long = pd.concat(shard_tables, ignore_index=True)
        # in the file's metadata, which an empty shard keeps too: gather checks the layout
        long.attrs = {"shard": args.shard, "n_shards": args.n_shards}
        io.write_table(long, args.out[0], "prediction_shard")
        log.info("%d predictions -> %s", len(long), args.out[0])


def _default_journal(args: argparse.Namespace) -> Path:
    """Beside the first output: ``<out>.answers.jsonl``."""
    return args.out[0].with_name(args.out[0].name + ".answers.jsonl")


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

    from cueprobe.inference import PREDICTION_COLUMNS

    outs = one_per(args.out, args.condition, flag="--out", per="--condition")
    checks = one_per(args.check_out, args.condition, flag="--check-out", per="--condition")
    tables = [io.read_table(p, "prediction_shard") for p in args.parts]
    _check_layout(args.parts, [t.attrs for t in tables])
    # an empty shard (more shards than utterances) has untyped columns: concatenated, they
    # made the gathered table's columns object, other bytes than the unsharded table's
    given = [t.assign(part=str(p)) for p, t in zip(args.parts, tables, strict=True)]
    parts = pd.concat([t for t in given if len(t)] or given, ignore_index=True)
    parts.attrs = {}  # the shard's number is no part of the predictions (same bytes as unsharded)
    unknown = sorted(set(parts["condition"]) - set(args.condition))
    if unknown:
        raise ValueError(f"the shard tables hold conditions not asked for: {unknown}.")
    # checked before anything is written, naming the shard tables (not the output)
    twice = parts[parts.duplicated(["condition", "utt_id"], keep=False)]
    if len(twice):
        first = twice.iloc[0]
        where = twice.loc[twice["utt_id"] == first["utt_id"], "part"].unique().tolist()
        raise ValueError(
            f"{first['utt_id']!r} has {int((twice['utt_id'] == first['utt_id']).sum())} rows for "
            f"condition {first['condition']!r} in the shard tables {where}: shards of two "
            f"layouts, or one given twice ({len(twice)} such rows in all)."
        )
    for name, out, check_out in zip(args.condition, outs, checks, strict=True):
        predictions = parts[parts["condition"] == name]
        if predictions.empty:
            raise ValueError(
                f"no shard table holds condition {name!r}: {list(map(str, args.parts))}."
            )
        # same order as an unsharded job (requests are sorted by utt_id); duplicates fail here
        predictions = predictions.sort_values("utt_id", ignore_index=True)
        predictions = predictions[list(PREDICTION_COLUMNS)]
        io.write_table(predictions, out, "predictions")
        _write_check(predictions, out, check_out)
        log.info(
            "%s: %d predictions from %d shards -> %s", name, len(predictions), len(args.parts), out
        )


def _check_layout(parts: Sequence[Path], attrs: Sequence[dict[str, Any]]) -> None:
    """The shard tables are the whole of one layout: one ``--n-shards``, every shard.

    A part left out (or the tables of another ``shards:`` setting, left by a run that
    did not re-run them) lost its utterances without a word; a part an older cueprobe
    wrote records no shard, and then the layout is not checked.
    """
    layout = {
        str(p): (a.get("shard"), a.get("n_shards")) for p, a in zip(parts, attrs, strict=True)
    }
    untagged = [p for p, (_, n) in layout.items() if n is None]
    if untagged:
        log.warning(
            "%d shard table(s) record no shard (written by an older cueprobe, e.g. %s): "
            "whether every shard is given is not checked",
            len(untagged),
            untagged[0],
        )
        return
    sizes = sorted({n for _, n in layout.values()})
    if len(sizes) > 1:
        raise ValueError(
            f"the shard tables are of {len(sizes)} layouts (--n-shards {sizes}): "
            + ", ".join(f"{p} (shard {k} of {n})" for p, (k, n) in layout.items())
        )
    missing = sorted(set(range(sizes[0])) - {k for k, _ in layout.values()})
    if missing:
        raise ValueError(
            f"shard(s) {missing[:10]} of {sizes[0]} are not among the {len(parts)} shard "
            f"tables given ({next(iter(layout))}, ...): their utterances would be missing "
            "from the predictions."
        )
