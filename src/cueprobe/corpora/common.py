"""Helpers shared by the corpus adapters: audio checks and the two output tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import soundfile as sf

MANIFEST_COLUMNS = [
    "utt_id",
    "path",
    "speaker",
    "gender",
    "session",
    "split",
    "label",
    "label_raw",
    "duration_s",
]
EXCLUDED_COLUMNS = ["utt_id", "path", "reason"]


class CorpusError(ValueError):
    """The corpus on disk cannot be read as declared; the message names file and line."""


def exclusion_counts(excluded: pd.DataFrame) -> pd.Series:
    """Excluded utterances per kind of reason (a reason up to its first ``:``), most first.

    Examples
    --------
    >>> reasons = ["missing_audio", "label_not_in_set: calm (line 3)", "missing_audio"]
    >>> exclusion_counts(pd.DataFrame({"reason": reasons})).to_dict()
    {'missing_audio': 2, 'label_not_in_set': 1}
    """
    return excluded["reason"].str.split(":").str[0].value_counts()


def exclusion_note(corpus: str, excluded: pd.DataFrame, path: str | Path) -> str | None:
    """The line that ends a run: how many utterances the corpus lost, and why (None: none).

    Examples
    --------
    >>> excluded = pd.DataFrame({"reason": ["missing_audio", "label_not_in_set: x (line 2)"]})
    >>> exclusion_note("c", excluded, "results/c/excluded.parquet")
    'c: 2 utterance(s) left out of the manifest (missing_audio 1, label_not_in_set 1); each with its reason in results/c/excluded.parquet'
    >>> exclusion_note("c", excluded.iloc[:0], "x") is None
    True
    """
    counts = exclusion_counts(excluded)
    if counts.empty:
        return None
    detail = ", ".join(f"{reason} {n}" for reason, n in counts.items())
    return (
        f"{corpus}: {counts.sum()} utterance(s) left out of the manifest ({detail}); "
        f"each with its reason in {path}"
    )


def audio_duration(path: Path) -> tuple[float | None, str | None]:
    """Duration in seconds from the header, or ``(None, reason)`` for a missing or unreadable file."""
    if not path.exists():
        return None, "missing_audio"
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises its own LibsndfileError, RuntimeError...
        return None, f"unreadable_audio: {type(err).__name__}: {str(err).strip()[:120]}"
    if info.frames == 0:
        return None, "empty_audio"
    return info.frames / info.samplerate, None


def split_kept(candidates: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split candidate rows (each with an optional ``reason``) into manifest and excluded.

    Rows without a reason have their audio checked; unreadable or missing audio
    moves them to excluded with the reason. Both tables come back sorted by utt_id.
    """
    kept, dropped = [], []
    for row in candidates:
        reason = row.get("reason")
        if reason is None:
            duration, reason = audio_duration(Path(row["path"]))
            row = row | {"duration_s": duration}
        if reason is None:
            kept.append({c: row[c] for c in MANIFEST_COLUMNS})
        else:
            dropped.append({"utt_id": row["utt_id"], "path": row["path"], "reason": reason})
    manifest = pd.DataFrame(kept, columns=MANIFEST_COLUMNS)
    manifest["duration_s"] = manifest["duration_s"].astype(float)
    for col in MANIFEST_COLUMNS:
        if col != "duration_s":
            manifest[col] = manifest[col].astype(str)
    excluded = pd.DataFrame(dropped, columns=EXCLUDED_COLUMNS).astype(str)
    _check_unique(manifest["utt_id"].tolist() + excluded["utt_id"].tolist())
    return (
        manifest.sort_values("utt_id", ignore_index=True),
        excluded.sort_values("utt_id", ignore_index=True),
    )


def _check_unique(ids: list[str]) -> None:
    seen, dup = set(), []
    for i in ids:
        if i in seen:
            dup.append(i)
        seen.add(i)
    if dup:
        raise CorpusError(
            f"{len(dup)} duplicate utterance id(s): {', '.join(map(repr, dup[:10]))}."
        )
