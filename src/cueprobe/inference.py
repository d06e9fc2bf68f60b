"""Inference: requests from (manifest, condition, templates), batched backend calls, predictions.

One job answers many conditions of one (corpus, model): every token condition at once
(or audio_only alone), so a model is loaded once and each distinct model call is made
once. The pieces:

:func:`build_requests`
    the evaluated utterances (the model's evaluated splits) joined with the condition's
    token strings, one prompt each, sorted by ``utt_id`` (deterministic order);
:func:`unique_requests`
    the distinct model calls of several conditions, keyed by :func:`answer_key`
    (utterance, prompt hash, audio hash), utterance-major: identical prompts (``aligned``
    and every ``corrupt_p0_s*``) are asked once, and the requests that share an audio
    file are neighbours in a batch;
:func:`run_requests`
    calls the backend batch by batch over the requests not yet answered and hands each
    finished batch to a callback (the CLI appends it to the answer journal and fsyncs),
    so a killed job loses at most the batch in flight and a restart skips what is done;
:func:`predictions_table`
    parses the raw answers (:func:`cueprobe.parsing.parse_answers`) into the predictions
    table;
:func:`audio_dependence`
    the sanity check: does the model's answer vary with the audio at all?
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cueprobe.backends.base import Backend
from cueprobe.backends.base import BackendInfo
from cueprobe.backends.base import Request
from cueprobe.define import ParseStatus
from cueprobe.parsing import parse_answers
from cueprobe.prompts import PromptTemplates
from cueprobe.prompts import build_prompt
from cueprobe.prompts import prompt_sha

__all__ = [
    "PREDICTION_COLUMNS",
    "AudioDependence",
    "RequestTable",
    "answer_key",
    "answer_key_fields",
    "audio_dependence",
    "build_requests",
    "predictions_table",
    "run_requests",
    "select_splits",
    "unique_requests",
]

log = logging.getLogger(__name__)

#: columns of the predictions table, in order
PREDICTION_COLUMNS = (
    "utt_id",
    "raw_output",
    "pred",
    "parse_status",
    "model_id",
    "revision",
    "decoding",
    "prompt_sha",
    "split",
    "label",
)


def select_splits(manifest: pd.DataFrame, splits: Sequence[str]) -> pd.DataFrame:
    """Rows of the evaluated splits (``"all"`` = every split).

    Raises
    ------
    ValueError
        When ``splits`` is empty or names a split without utterances.
    """
    if not splits:
        raise ValueError("`splits` is empty: name the evaluated splits or 'all'.")
    if "all" in splits:
        return manifest
    have = set(manifest["split"])
    lacking = [s for s in splits if s not in have]  # each: ["test", "tset"] asked test only
    if lacking:
        raise ValueError(f"no utterance in split(s) {lacking}; the manifest has {sorted(have)}.")
    return manifest[manifest["split"].isin(list(splits))]


def build_requests(
    manifest: pd.DataFrame,
    condition: pd.DataFrame,
    *,
    templates: PromptTemplates,
    labels: Sequence[str],
    splits: Sequence[str],
    token_blocks: bool | None = None,
) -> pd.DataFrame:
    """One request per evaluated utterance, sorted by ``utt_id``.

    Parameters
    ----------
    manifest : pandas.DataFrame
        The corpus manifest (``utt_id``, ``path``, ``split``, ``label``).
    condition : pandas.DataFrame
        The condition table (``utt_id``, ``token_string``; null ``token_string`` gives the
        audio-only prompt). It must cover every evaluated utterance.
    templates : PromptTemplates
        The two prompt formats.
    labels : sequence of str
        The class set, listed in the prompt in this order.
    splits : sequence of str
        Evaluated splits (:func:`cueprobe.corpora.eval_splits`).
    token_blocks : bool or None, default: None
        Whether the condition carries token blocks (True: every evaluated row needs one;
        False: none may have one); None: either, as long as all rows agree.

    Returns
    -------
    pandas.DataFrame
        ``utt_id``, ``audio_path``, ``prompt``, ``prompt_sha``, ``split``, ``label``.

    Raises
    ------
    ValueError
        When evaluated utterances are missing from the condition table.
    """
    for name, df, cols in (
        ("manifest", manifest, ("utt_id", "path", "split", "label")),
        ("condition", condition, ("utt_id", "token_string")),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"`{name}` lacks column(s) {missing}.")
    evaluated = select_splits(manifest, splits)
    tokens = condition.set_index("utt_id")["token_string"]
    absent = evaluated.loc[~evaluated["utt_id"].isin(tokens.index), "utt_id"]
    if len(absent):
        first = ", ".join(map(repr, absent.head(5)))
        raise ValueError(
            f"{len(absent)} evaluated utterance(s) are missing from the condition table: {first}."
        )
    out = evaluated[["utt_id", "path", "split", "label"]].rename(columns={"path": "audio_path"})
    out = out.sort_values("utt_id", kind="stable").reset_index(drop=True)
    token_strings = tokens.reindex(out["utt_id"]).to_numpy()
    # all null (audio-only) or a token block for every utterance: a row without one in a
    # token condition was asked the audio-only prompt and scored as that condition
    blank = pd.isna(token_strings) | (token_strings == "")
    if token_blocks is None:
        token_blocks = not pd.isna(token_strings).all()
    wrong = blank if token_blocks else ~pd.isna(token_strings)
    if wrong.any():
        first = ", ".join(map(repr, out["utt_id"][wrong].head(5)))
        what = "have no token_string" if token_blocks else "have a token_string"
        raise ValueError(
            f"{int(wrong.sum())} of {len(out)} evaluated utterance(s) {what} ({first}): a "
            "token condition needs a token block for every utterance, an audio-only one none."
        )
    prompts = [
        build_prompt(templates, labels=labels, token_string=None if pd.isna(t) else str(t))
        for t in token_strings
    ]
    out.insert(2, "prompt", prompts)
    out.insert(3, "prompt_sha", [prompt_sha(templates, p) for p in prompts])
    return out


def answer_key(utt_id: str, prompt_sha: str, audio_sha: str) -> str:
    """What identifies one model call: the utterance, the exact text read, the audio bytes.

    Two conditions that give an utterance the same prompt share the answer; a changed
    audio file (same ``utt_id``) or a changed prompt never does.
    """
    return f"{utt_id}\t{prompt_sha}\t{audio_sha}"


def answer_key_fields(key: str) -> dict[str, str]:
    """``utt_id``, ``prompt_sha`` and ``audio_sha`` of an :func:`answer_key`."""
    utt_id, prompt_sha_, audio_sha = key.split("\t")
    return {"utt_id": utt_id, "prompt_sha": prompt_sha_, "audio_sha": audio_sha}


class RequestTable(Mapping[str, Request]):
    """``answer_key -> Request``, made on access from the condition frames' columns.

    A 32-condition job at FAU-Aibo size has ~350k distinct calls; holding them as
    Request objects (over concatenated frames) took 1 GB more than the frames themselves
    (measured), so a request is made only when its batch runs.
    """

    def __init__(
        self, columns: Sequence[Mapping[str, pd.Series]], where: dict[str, tuple[int, int]]
    ):
        self._columns = columns
        self._where = where

    def __getitem__(self, key: str) -> Request:
        rank, row = self._where[key]
        c = self._columns[rank]
        utt_id = c["utt_id"].iat[row]
        return Request(
            utt_id=utt_id,
            audio_path=c["audio_path"].iat[row],
            prompt=c["prompt"].iat[row],
            audio_key=utt_id,
        )

    def __iter__(self):
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


def unique_requests(
    frames: Mapping[str, pd.DataFrame], audio_sha: Mapping[str, str]
) -> tuple[RequestTable, dict[str, pd.Series]]:
    """The distinct model calls of several conditions, and each condition's keys.

    Parameters
    ----------
    frames : mapping
        ``condition -> build_requests(...)`` frame.
    audio_sha : mapping
        ``audio_path -> content hash`` of every audio file in the frames.

    Returns
    -------
    requests : RequestTable
        ``answer_key -> Request``, each key once, ordered by utterance then by the
        order of ``frames`` (the requests of one audio file are neighbours).
    keys : dict
        ``condition -> Series`` of answer keys, aligned with that condition's frame.
    """
    keys: dict[str, pd.Series] = {}
    columns, utts, ranks, rows, every = [], [], [], [], []
    for rank, (name, frame) in enumerate(frames.items()):
        missing = sorted(set(frame["audio_path"]) - set(audio_sha))
        if missing:
            raise ValueError(f"no audio hash for {len(missing)} file(s): {missing[:3]}.")
        k = np.asarray(
            [
                answer_key(u, s, audio_sha[a])
                for u, s, a in zip(
                    frame["utt_id"], frame["prompt_sha"], frame["audio_path"], strict=True
                )
            ],
            dtype=object,
        )
        keys[name] = pd.Series(k, index=frame.index, dtype=object)
        columns.append({c: frame[c] for c in ("utt_id", "audio_path", "prompt")})
        utts.append(frame["utt_id"].to_numpy())
        ranks.append(np.full(len(frame), rank))
        rows.append(np.arange(len(frame)))
        every.append(k)
    where: dict[str, tuple[int, int]] = {}
    if every:
        order = (
            pd.DataFrame({"utt": np.concatenate(utts), "rank": np.concatenate(ranks)})
            .sort_values(["utt", "rank"], kind="stable")
            .index.to_numpy()
        )
        all_keys, all_ranks, all_rows = (np.concatenate(x) for x in (every, ranks, rows))
        for i in order:
            where.setdefault(all_keys[i], (int(all_ranks[i]), int(all_rows[i])))
    return RequestTable(columns, where), keys


def run_requests(
    backend: Backend,
    requests: Mapping[str, Request],
    *,
    batch_size: int,
    done: Collection[str],
    on_batch: Callable[[Sequence[str], Sequence[Request], Sequence[str | None]], None],
) -> int:
    """Answer the requests whose key is not in ``done``, ``batch_size`` at a time.

    Parameters
    ----------
    backend : Backend
        Anything with ``generate(requests) -> answers``.
    requests : mapping
        ``key -> Request``: all requests of the job, in order.
    batch_size : int
        Requests per ``generate`` call (and per ``on_batch`` call).
    done : collection of str
        Keys already answered (read back from the answer journal).
    on_batch : callable
        Called with each batch's keys, requests and answers as soon as they come back;
        when ``generate`` raises a :class:`ConnectionError` with ``answered`` (position
        in the batch -> answer), with those first.

    Returns
    -------
    int
        Number of requests answered in this call.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    pending = [k for k in requests if k not in done]
    log.info(
        "%d request(s), %d already answered, %d to go",
        len(requests),
        len(requests) - len(pending),
        len(pending),
    )
    every = max(1, len(pending) // 20)  # a progress line per ~5 %: an OOM kill's log says
    began, logged = time.perf_counter(), 0  # how far the journal got (a re-run resumes there)
    for start in range(0, len(pending), batch_size):
        if start - logged >= every:
            rate = start / max(time.perf_counter() - began, 1e-9)
            log.info(
                "answered %d/%d (%.0f%%, %.2f requests/s, ~%.0f s to go); each batch is "
                "journaled as it comes, so a re-run resumes from here",
                start, len(pending), 100 * start / len(pending), rate,
                (len(pending) - start) / rate,
            )  # fmt: skip
            logged = start
        chunk = pending[start : start + batch_size]
        batch = [requests[k] for k in chunk]  # made per batch (see RequestTable)
        try:
            answers = backend.generate(batch)
        except ConnectionError as err:  # a backend that gave up mid-batch: keep what it got
            got = sorted(getattr(err, "answered", {}).items())
            if got:
                on_batch(
                    [chunk[i] for i, _ in got], [batch[i] for i, _ in got], [a for _, a in got]
                )
            raise
        on_batch(chunk, batch, answers)
    return len(pending)


def predictions_table(
    frame: pd.DataFrame,
    answers: Mapping[str, str | None],
    *,
    info: BackendInfo,
    labels: Mapping[str, Sequence[str]],
    answer_pattern: str | None = None,
) -> pd.DataFrame:
    """The predictions table of one job.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`build_requests` output.
    answers : mapping
        ``utt_id -> raw answer`` (None: the backend could not answer: ``parse_status`` is
        ``error``). Must cover every row of ``frame``.
    info : BackendInfo
        Model id, revision and decoding, written on every row.
    labels : mapping
        Class set and synonyms for :func:`cueprobe.parsing.parse_answers`.
    answer_pattern : str or None
        The model's ``answer_pattern``: the part of each answer that is parsed
        (:func:`cueprobe.parsing.final_answer`); ``raw_output`` keeps the whole answer.

    Returns
    -------
    pandas.DataFrame
        :data:`PREDICTION_COLUMNS`, one row per request, in request order.
    """
    missing = frame.loc[~frame["utt_id"].isin(list(answers)), "utt_id"]
    if len(missing):
        first = ", ".join(map(repr, missing.head(5)))
        raise ValueError(f"{len(missing)} request(s) have no answer: {first}.")
    raw = [answers[u] for u in frame["utt_id"]]
    parsed = parse_answers(raw, labels, answer_pattern=answer_pattern)
    error = pd.Series([r is None for r in raw])
    parsed.loc[error, "parse_status"] = ParseStatus.ERROR.value
    out = pd.DataFrame(
        {
            "utt_id": frame["utt_id"].to_numpy(),
            "raw_output": pd.Series(raw, dtype="str"),  # as a table read back (gathered shards)
            "pred": parsed["pred"].to_numpy(),
            "parse_status": parsed["parse_status"].to_numpy(),
            "model_id": info.model_id,
            "revision": info.revision,
            "decoding": info.decoding,
            "prompt_sha": frame["prompt_sha"].to_numpy(),
            "split": frame["split"].to_numpy(),
            "label": frame["label"].to_numpy(),
        }
    )
    return out[list(PREDICTION_COLUMNS)]


@dataclasses.dataclass(frozen=True)
class AudioDependence:
    """Does a model's answer vary with the audio? (one predictions table)

    Attributes
    ----------
    n : int
        Predictions checked.
    n_distinct_pred : int
        Distinct predicted labels (unparsed/error answers count as one value "").
    majority_share : float
        Share of the most frequent prediction.
    n_shared_prompt : int
        Utterances whose prompt text is shared with at least one other utterance (all of
        them in ``audio_only``).
    prompt_determined_share : float
        Among those, the share whose prediction equals the most frequent prediction of
        their prompt group (1.0: the prompt alone decides the answer); NaN when none.
    invariant : bool
        True when the predictions do not depend on the audio: a single answer for every
        utterance, or the same answer for every utterance sharing a prompt.
    reason : str
        Why ``invariant`` is set ("" when it is not).
    """

    n: int
    n_distinct_pred: int
    majority_share: float
    n_shared_prompt: int
    prompt_determined_share: float
    invariant: bool
    reason: str


def audio_dependence(predictions: pd.DataFrame, *, min_shared: int = 10) -> AudioDependence:
    """Check whether predictions vary with the audio; see :class:`AudioDependence`.

    Parameters
    ----------
    predictions : pandas.DataFrame
        ``pred`` and ``prompt_sha`` of one (corpus, model, condition).
    min_shared : int, default: 10
        Utterances with shared prompts needed before "the prompt decides" is concluded.

    Examples
    --------
    >>> df = pd.DataFrame({"pred": ["sad"] * 12, "prompt_sha": ["a"] * 12})
    >>> audio_dependence(df).invariant
    True
    """
    n = len(predictions)
    pred = predictions["pred"].fillna("")
    counts = pred.value_counts()
    majority = float(counts.iloc[0] / n) if n else float("nan")
    group_size = predictions.groupby("prompt_sha")["prompt_sha"].transform("size")
    shared = predictions[group_size > 1]
    if len(shared):
        mode = shared.groupby("prompt_sha")["pred"].agg(
            lambda s: s.fillna("").value_counts().index[0]
        )
        determined = float((shared["pred"].fillna("") == shared["prompt_sha"].map(mode)).mean())
    else:
        determined = float("nan")
    reason = ""
    if n >= 2 and len(counts) == 1:
        reason = f"every one of the {n} utterances got the same answer {counts.index[0]!r}"
    elif len(shared) >= min_shared and determined == 1.0:
        reason = (
            f"all {len(shared)} utterances that share a prompt with another got the same answer "
            "as the others with that prompt: the prompt alone decides the answer"
        )
    return AudioDependence(
        n=n,
        n_distinct_pred=int(len(counts)),
        majority_share=majority,
        n_shared_prompt=int(len(shared)),
        prompt_determined_share=determined,
        invariant=bool(reason),
        reason=reason,
    )
