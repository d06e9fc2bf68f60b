"""Any corpus from a CSV sheet: ``path,label,speaker[,gender,split,utt_id]``.

Relative paths are resolved against the CSV's folder. ``utt_id`` defaults to the
path without its suffix, relative to that folder. ``split`` defaults to ``test``
(zero-shot evaluation of everything). Labels outside the configured label set are
excluded with their reason, never silently dropped. ``gender`` is written ``F``/``M``
whatever the sheet's spelling (:data:`GENDERS`: ``female``, ``Male``, ``w``...), since
gender-specific token bins are fitted for ``F`` and ``M``; empty is ``unknown``, and any
other value is kept as written (binned with the pooled edges).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import pandas as pd

from cueprobe.corpora.common import CorpusError
from cueprobe.corpora.common import split_kept

REQUIRED = ("path", "label", "speaker")
SPLITS = ("train", "dev", "test")
#: spellings of the two gender groups (case-insensitive) -> the manifest's value
GENDERS = {
    **dict.fromkeys(("f", "female", "w", "woman"), "F"),
    **dict.fromkeys(("m", "male", "man"), "M"),
}


def normalise_gender(value: str) -> str:
    """``F``/``M`` for the spellings in :data:`GENDERS`; ``unknown`` if empty; else as is.

    Examples
    --------
    >>> [normalise_gender(g) for g in ("Female", "m", " W ", "", "child")]
    ['F', 'M', 'F', 'unknown', 'child']
    """
    value = value.strip()
    return GENDERS.get(value.lower(), value) if value else "unknown"


def read_csv_corpus(
    sheet: Path, *, labels: Collection[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the manifest and the excluded table from a CSV sheet."""
    sheet = Path(sheet)
    if not sheet.is_file():
        raise CorpusError(f"corpus sheet not found: {sheet}")
    df = pd.read_csv(sheet, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise CorpusError(f"{sheet}: missing column(s) {missing}; it has {list(df.columns)}")
    empty = df.index[(df[list(REQUIRED)] == "").any(axis=1)]
    if len(empty):
        rows = ", ".join(str(i + 2) for i in empty[:10])
        raise CorpusError(f"{sheet}: empty path/label/speaker on line(s) {rows}")
    base = sheet.parent
    candidates = []
    for i, rec in enumerate(df.to_dict("records")):
        path = Path(rec["path"])
        full = path if path.is_absolute() else base / path
        utt_id = rec.get("utt_id") or str(path.with_suffix("")).replace("\\", "/")
        split = rec.get("split") or "test"
        if split not in SPLITS:
            raise CorpusError(f"{sheet}:{i + 2}: split {split!r} is not one of {SPLITS}")
        row = {
            "utt_id": utt_id,
            "path": str(full.resolve()),
            "speaker": rec["speaker"],
            "gender": normalise_gender(rec.get("gender", "")),
            "session": rec.get("session") or rec["speaker"],
            "split": split,
            "label": rec["label"],
            "label_raw": rec["label"],
        }
        if labels is not None and rec["label"] not in labels:
            row["reason"] = f"label_not_in_set: {rec['label']}"
        candidates.append(row)
    return split_kept(candidates)
