"""Helpers shared by the corpus adapters: audio checks and the two output tables."""

from __future__ import annotations

import unicodedata
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
    """Excluded utterances per kind of reason (a reason up to its first ``:`` or `` (``), most first.

    Examples
    --------
    >>> reasons = ["missing_audio", "label_not_in_set: calm (line 3)", "missing_audio (s.csv:4)"]
    >>> exclusion_counts(pd.DataFrame({"reason": reasons})).to_dict()
    {'missing_audio': 2, 'label_not_in_set': 1}
    """
    return excluded["reason"].str.split(r":| \(", n=1, regex=True).str[0].value_counts()


def exclusion_detail(excluded: pd.DataFrame, *, top: int | None = None) -> str:
    """``reason n, ...`` for the excluded utterances, most frequent first ("" for none).

    Examples
    --------
    >>> reasons = ["missing_audio", "label_not_in_set: calm (line 3)", "missing_audio"]
    >>> exclusion_detail(pd.DataFrame({"reason": reasons}), top=1)
    'missing_audio 2'
    """
    counts = exclusion_counts(excluded).head(top)
    return ", ".join(f"{reason} {n}" for reason, n in counts.items())


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
    if excluded.empty:
        return None
    return (
        f"{corpus}: {len(excluded)} utterance(s) left out of the manifest "
        f"({exclusion_detail(excluded)}); each with its reason in {path}"
    )


def existing_form(path: Path) -> Path:
    """``path``, or the spelling on disk of its parts in the other Unicode normalisation
    (NFC/NFD), where only that one exists.

    A sheet or label file typed in NFC (``é`` one code point) names files that an archive
    made on macOS stores in NFD (``e`` + combining accent): they were `missing_audio`.
    Each part is matched on its own: an archive unpacked into a folder made on Linux
    (``Études/``, NFC) holds NFD names, so neither form of the whole path exists.
    """
    if path.exists():
        return path
    found = Path(path.anchor)
    for part in path.parts[1:] if path.anchor else path.parts:
        forms = dict.fromkeys(unicodedata.normalize(form, part) for form in ("NFC", "NFD"))
        on_disk = [found / f for f in (part, *forms) if (found / f).exists()]
        if not on_disk:
            return path
        found = on_disk[0]
    return found


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
    A row may carry ``where``, the place it was read from (``sheet.csv:162``): the
    audio reasons and the errors below then name it.

    Raises
    ------
    CorpusError
        An utt_id holds a control character (a tab or a line break would split the
        answer journal's keys), two rows share an utt_id, or two kept rows name one
        audio file (``a/x.wav`` and ``a/../a/x.wav``, two links to one file).
    """
    _check_ids(candidates)
    kept, dropped, kept_rows = [], [], []
    for row in candidates:
        reason = row.get("reason")
        if reason is None:
            path = existing_form(Path(row["path"]))
            duration, reason = audio_duration(path)
            row = row | {"duration_s": duration, "path": str(path)}
            if reason is not None and row.get("where"):
                reason = f"{reason} ({row['where']})"
        if reason is None:
            kept.append({c: row[c] for c in MANIFEST_COLUMNS})
            kept_rows.append(row)
        else:
            dropped.append({"utt_id": row["utt_id"], "path": row["path"], "reason": reason})
    _check_files(kept_rows)
    manifest = pd.DataFrame(kept, columns=MANIFEST_COLUMNS)
    manifest["duration_s"] = manifest["duration_s"].astype(float)
    for col in MANIFEST_COLUMNS:
        if col != "duration_s":
            manifest[col] = manifest[col].astype(str)
    excluded = pd.DataFrame(dropped, columns=EXCLUDED_COLUMNS).astype(str)
    return (
        manifest.sort_values("utt_id", ignore_index=True),
        excluded.sort_values("utt_id", ignore_index=True),
    )


def check_sessions_heard(
    manifest: pd.DataFrame, excluded: pd.DataFrame, candidates: list[dict], *, root: Path
) -> None:
    """Refuse a corpus that lost a whole session's audio (a partial unpack of the corpus).

    Each session (IEMOCAP's five, FAU-Aibo's two schools) with utterances of the label set
    must keep one: without it a session's turns all went to ``excluded`` as missing audio,
    the test split was empty, and the run went on (the end-of-run count was the only sign).

    Raises
    ------
    CorpusError
        Naming the session, how many of its utterances lost their audio and one path.
    """
    labelled = {}
    for row in candidates:
        if row.get("reason") is None:
            labelled.setdefault(row["session"], []).append(row["utt_id"])
    lost = sorted(set(labelled) - set(manifest["session"]))
    if not lost:
        return
    reasons = excluded.set_index("utt_id")
    details = []
    for session in lost:
        ids = labelled[session]
        first = reasons.loc[ids[0]]
        why = exclusion_detail(reasons.loc[ids].reset_index())
        details.append(f"{session}: all {len(ids)} ({why}), e.g. {first['path']}")
    raise CorpusError(
        f"{root}: every utterance of the label set lost its audio in "
        f"{len(lost)} session(s): {'; '.join(details)}. Is the corpus fully unpacked?"
    )


def control_characters(text: str) -> list[str]:
    """The control characters and line or paragraph separators in ``text``, escaped.

    Examples
    --------
    >>> print(*control_characters("Ses01" + chr(9) + "F001" + chr(10)))
    '\\t' '\\n'
    >>> control_characters("wav/Ses01F_impro01_F001")
    []
    """
    return [repr(ch) for ch in text if unicodedata.category(ch) in ("Cc", "Zl", "Zp")]


def _row_place(row: dict) -> str:
    """Where a candidate row comes from: its ``where``, else its audio path."""
    return row.get("where") or f"audio {row['path']}"


def _check_files(kept: list[dict]) -> None:
    """Two kept utterances must not be one audio file, however its path is spelt: the
    same clip twice (under two ids, a ``..`` in one path, two links to one file) counts
    twice in every test, and with two labels contradicts itself."""
    rows_of: dict[str, list[dict]] = {}
    for row in kept:
        # links followed, as the adapters record paths: in a content-addressed store
        # (git-annex, DataLad) two byte-identical recordings are one object, and one sample
        rows_of.setdefault(str(Path(row["path"]).resolve()), []).append(row)
    dup = {f: rows for f, rows in rows_of.items() if len(rows) > 1}
    if not dup:
        return
    shown = [
        f"{f} ({', '.join(row.get('where') or repr(row['utt_id']) for row in rows)}: labels "
        f"{', '.join(dict.fromkeys(str(row['label']) for row in rows))})"
        for f, rows in list(dup.items())[:10]
    ]
    raise CorpusError(
        f"{len(dup)} audio file(s) listed more than once (under different ids, spellings, or "
        f"links to one file, as a content-addressed store makes of identical recordings): "
        f"{'; '.join(shown)}. List each file once."
    )


def _check_ids(candidates: list[dict]) -> None:
    for row in candidates:
        bad = control_characters(str(row["utt_id"]))
        if bad:
            raise CorpusError(
                f"{_row_place(row)}: utt_id {row['utt_id']!r} holds control character(s) "
                f"{', '.join(dict.fromkeys(bad))}; a tab or line break would split the answer "
                "journal's keys. Write the id without them."
            )
    rows_of: dict[str, list[dict]] = {}
    for row in candidates:
        rows_of.setdefault(row["utt_id"], []).append(row)
    dup = {utt_id: rows for utt_id, rows in rows_of.items() if len(rows) > 1}
    if not dup:
        return
    shown, one_file = [], False
    for utt_id, rows in list(dup.items())[:10]:
        paths = list(dict.fromkeys(row["path"] for row in rows))
        located = all(row.get("where") for row in rows)
        place = ", ".join(row["where"] for row in rows) if located else f"{len(rows)} rows"
        if len(paths) == 1:
            place += f", all for audio {paths[0]}"
        elif not located:  # the paths are all that tells the rows apart
            place += f", audio {', '.join(paths)}"
        one_file = one_file or len(paths) == 1
        shown.append(f"{utt_id!r} ({place})")
    hint = (
        " One audio file is listed more than once (an id taken from the audio path, as a csv "
        "sheet without a utt_id column does, repeats with it): list each file once, or give "
        "each row its own utt_id."
        if one_file
        else " Give each utterance its own utt_id."
    )
    raise CorpusError(f"{len(dup)} duplicate utterance id(s): {'; '.join(shown)}.{hint}")
