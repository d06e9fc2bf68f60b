"""FAU-Aibo 5-class adapter (INTERSPEECH 2009 Emotion Challenge labels).

Reads ``labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt`` with lines
``<chunk_id> <A|E|N|P|R> <confidence>`` and audio at ``wav/<chunk_id>.wav``. The
school is the first field of the id (Ohm = train, Mont = test), the speaker the
first two fields (``Ohm_01``; child numbers repeat across schools). Dev is a
speaker-disjoint part of Ohm: by default its last two speakers in sorted order
(autrainer's convention), or the speakers given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from cueprobe.corpora.common import CorpusError
from cueprobe.corpora.common import check_sessions_heard
from cueprobe.corpora.common import split_kept

LABEL_FILE = "labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt"
LABEL_MAP = {"A": "angry", "E": "emphatic", "N": "neutral", "P": "positive", "R": "rest"}
LABELS = {
    "angry": ["anger", "angry", "annoyed"],
    "emphatic": ["emphatic", "emphasis", "emphasised", "emphasized"],
    "neutral": ["neutral"],
    "positive": ["positive", "motherese", "joyful", "happy"],
    "rest": ["rest", "other"],
}
_LINE = re.compile(
    r"^(?P<id>(?P<school>[A-Za-z]+)_(?P<child>\d+)_\S+)\s+(?P<cls>\S+)\s+(?P<conf>[\d.]+)\s*$"
)


def read_aibo(
    root: Path, *, dev_speakers: Sequence[str] | None = None, n_dev_speakers: int = 2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the manifest and the excluded table of a FAU-Aibo tree."""
    root = Path(root)
    label_file = root / LABEL_FILE
    if not label_file.exists():
        raise CorpusError(f"FAU-Aibo label file not found: {label_file}")
    entries = []
    for lineno, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            raise CorpusError(f"{label_file}:{lineno}: cannot parse chunk label line {line!r}")
        school = m["school"]
        if school not in ("Ohm", "Mont"):
            raise CorpusError(f"{label_file}:{lineno}: unknown school {school!r} (Ohm or Mont)")
        entries.append((m["id"], school, f"{school}_{m['child']}", m["cls"]))
    ohm = sorted({spk for _, school, spk, _ in entries if school == "Ohm"})
    if dev_speakers is None:
        if not 1 <= n_dev_speakers < len(ohm):
            raise CorpusError(
                f"n_dev_speakers={n_dev_speakers!r}: {label_file} has {len(ohm)} Ohm speakers, "
                "so it must lie in [1, n - 1] (at least one Ohm speaker stays in train)."
            )
        dev = set(ohm[len(ohm) - n_dev_speakers :])
    else:
        unknown = sorted(set(dev_speakers) - set(ohm))
        if unknown:
            raise CorpusError(f"dev_speakers {unknown} are not Ohm speakers of {label_file}")
        dev = set(dev_speakers)
        if dev == set(ohm):
            raise CorpusError(
                f"dev_speakers name every Ohm speaker of {label_file}: no train left."
            )
    candidates = []
    for chunk_id, school, speaker, cls in entries:
        split = "test" if school == "Mont" else ("dev" if speaker in dev else "train")
        row = {
            "utt_id": chunk_id,
            "path": str(root / "wav" / f"{chunk_id}.wav"),
            "speaker": speaker,
            "gender": "unknown",
            "session": school,
            "split": split,
            "label": LABEL_MAP.get(cls, ""),
            "label_raw": cls,
        }
        if cls not in LABEL_MAP:
            row["reason"] = f"class_not_in_5cl: {cls}"
        candidates.append(row)
    manifest, excluded = split_kept(candidates)
    check_sessions_heard(manifest, excluded, candidates, root=root)
    return manifest, excluded
