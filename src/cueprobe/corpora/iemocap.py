"""IEMOCAP 4-way adapter (official release tree).

Reads ``Session{1..5}/dialog/EmoEvaluation/*.txt`` turn lines
``[start - end]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[v, a, d]`` and the wavs under
``Session{n}/sentences/wav/<dialog>/<utt>.wav``. Keeps ang, hap, exc, neu, sad with
exc merged into happy (the 4-way protocol, Antoniou et al. 2023: 5,531 turns).

The speaker is the session plus the gender letter of the utterance id's LAST
field: in ``Ses01F_impro01_M003`` the dialogue is led by the female actor but the
turn is spoken by the male one, speaker ``Ses01M``. Sessions 1-4 train, 5 test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from cueprobe.corpora.common import CorpusError
from cueprobe.corpora.common import check_sessions_heard
from cueprobe.corpora.common import split_kept

LABEL_MAP = {"ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral", "sad": "sad"}
LABELS = {
    "angry": ["anger", "angry", "mad"],
    "happy": ["happiness", "happy", "joy", "joyful", "excited", "excitement"],
    "neutral": ["neutral", "neutrality"],
    "sad": ["sadness", "sad"],
}
_TURN = re.compile(
    r"^\[(?P<start>[\d.]+) - (?P<end>[\d.]+)\]\t(?P<utt>\S+)\t(?P<emo>\S+)\t\[.*\]\s*$"
)
_UTT = re.compile(r"^(?P<session>Ses\d\d)[FM]_.+_(?P<gender>[FM])\d+$")


def parse_emo_evaluation(path: Path) -> list[tuple[int, str, str]]:
    """Return ``(line number, utt_id, category)`` for every turn line of one EmoEvaluation file.

    Header (``%``), evaluator (``C-E2:``, ``A-E3:`` ...) and blank lines are skipped;
    a line that starts like a turn but does not parse is an error naming file and line,
    and so is one that names an utterance in a field but does not start like a turn (an
    indented or BOM-led turn line is read): such a turn was left out without a trace.
    """
    turns = []
    for lineno, line in enumerate(
        path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1
    ):
        text = line.lstrip("\ufeff \t")
        if not text.startswith("["):
            named = [f.strip() for f in text.split("\t") if _UTT.match(f.strip())]
            if named:
                raise CorpusError(
                    f"{path}:{lineno}: line names utterance {named[0]!r} but does not start "
                    f"with [START - END] as a turn line does: {line!r}"
                )
            continue
        m = _TURN.match(text)
        if m is None:
            raise CorpusError(f"{path}:{lineno}: cannot parse turn line {line!r}")
        turns.append((lineno, m["utt"], m["emo"]))
    return turns


def speaker_of(utt_id: str) -> tuple[str, str, str]:
    """``(speaker, gender, session)`` of an IEMOCAP utterance id.

    Examples
    --------
    >>> speaker_of("Ses01F_impro01_M003")
    ('Ses01M', 'M', 'Ses01')
    """
    m = _UTT.match(utt_id)
    if m is None:
        raise CorpusError(f"not an IEMOCAP utterance id: {utt_id!r}")
    return f"{m['session']}{m['gender']}", m["gender"], m["session"]


def emo_evaluation_files(root: Path | str) -> list[Path]:
    """The EmoEvaluation files an IEMOCAP tree's labels are read from, sorted.

    Not the ``._*.txt`` AppleDouble sidecars a copy made on macOS carries (binary: one
    with a line starting with "[" stopped the manifest). The workflow gives them to the
    manifest job as its input, so that Snakemake sees an edited label file.
    """
    return sorted(
        p
        for p in Path(root).glob("Session[1-5]/dialog/EmoEvaluation/*.txt")
        if not p.name.startswith(".")
    )


def read_iemocap(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the manifest and the excluded table of an IEMOCAP tree."""
    root = Path(root)
    files = emo_evaluation_files(root)
    if not files:
        raise CorpusError(
            f"no EmoEvaluation files under {root}/Session*/dialog/EmoEvaluation/: "
            "is `root` the folder that holds Session1..Session5?"
        )
    candidates = []
    for path in files:
        for lineno, utt_id, emo in parse_emo_evaluation(path):
            try:
                speaker, gender, session = speaker_of(utt_id)
            except CorpusError as err:
                raise CorpusError(f"{path}:{lineno}: {err}") from None
            dialog = utt_id.rsplit("_", 1)[0]
            wav = root / f"Session{int(session[3:])}/sentences/wav/{dialog}/{utt_id}.wav"
            row = {
                "utt_id": utt_id,
                "path": str(wav),
                "speaker": speaker,
                "gender": gender,
                "session": session,
                "split": "test" if session == "Ses05" else "train",
                "label": LABEL_MAP.get(emo, ""),
                "label_raw": emo,
            }
            if emo not in LABEL_MAP:
                row["reason"] = f"category_not_in_4way: {emo}"
            candidates.append(row)
    found = {path.parts[-4] for path in files}
    missing = [f"Session{i}" for i in range(1, 6) if f"Session{i}" not in found]
    if missing:  # a lost session would shrink the corpus (or empty the test split) silently
        raise CorpusError(
            f"no EmoEvaluation files under {root}/{{{','.join(missing)}}}/dialog/EmoEvaluation/: "
            "IEMOCAP has Session1..Session5 (1-4 train, 5 test). For a subset, list it in a CSV "
            "sheet (adapter `csv`)."
        )
    manifest, excluded = split_kept(candidates)
    check_sessions_heard(manifest, excluded, candidates, root=root)
    return manifest, excluded
