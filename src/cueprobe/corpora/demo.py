"""Deterministic demo corpora in the official IEMOCAP and FAU-Aibo layouts.

Emotions are prosodic profiles (offsets from a speaker's baseline) with speaker
and utterance noise, so classes overlap as in real data. The trees are then read
by the real :mod:`cueprobe.corpora.iemocap` and :mod:`cueprobe.corpora.aibo`
adapters. A parameters table (``generating_params.csv`` at the root) lets tests
check that features and tokens recover what was generated.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from cueprobe.corpora.synth import SAMPLE_RATE
from cueprobe.corpora.synth import VoiceParams
from cueprobe.corpora.synth import synthesize
from cueprobe.typing import PathLike

#: per-emotion offsets: F0 (semitones), F0 range (x), level (dB), tilt, jitter (x),
#: shimmer (x), breathiness (+), rate (x), duration (x). After Scherer's (2003)
#: vocal-affect review and Banse & Scherer (1996): anger/joy high arousal (high
#: F0, level, bright), sadness low (low F0, narrow range, dark, breathy, slow).
PROFILES: dict[str, dict[str, float]] = {
    "ang": dict(
        f0=3.0, rng=1.4, level=6.0, tilt=0.5, jit=1.5, shim=1.5, br=-0.05, rate=1.2, dur=0.9
    ),
    "hap": dict(
        f0=4.0, rng=1.8, level=3.0, tilt=0.25, jit=1.0, shim=1.0, br=0.0, rate=1.15, dur=1.0
    ),
    "exc": dict(f0=4.5, rng=1.7, level=4.0, tilt=0.3, jit=1.1, shim=1.1, br=0.0, rate=1.2, dur=1.0),
    "neu": dict(f0=0.0, rng=1.0, level=0.0, tilt=0.0, jit=1.0, shim=1.0, br=0.0, rate=1.0, dur=1.0),
    "sad": dict(
        f0=-2.5, rng=0.6, level=-6.0, tilt=-0.45, jit=1.3, shim=1.3, br=0.12, rate=0.8, dur=1.2
    ),
    "fru": dict(
        f0=1.0, rng=1.1, level=2.0, tilt=0.2, jit=1.2, shim=1.2, br=0.0, rate=1.05, dur=1.0
    ),
    "sur": dict(f0=5.0, rng=2.0, level=2.0, tilt=0.2, jit=1.0, shim=1.0, br=0.0, rate=1.1, dur=0.8),
    # FAU-Aibo classes (children talking to a robot dog)
    "A": dict(
        f0=2.5, rng=1.3, level=5.0, tilt=0.45, jit=1.4, shim=1.4, br=-0.05, rate=1.1, dur=0.9
    ),
    "E": dict(f0=1.5, rng=1.2, level=4.0, tilt=0.3, jit=1.1, shim=1.1, br=0.0, rate=0.8, dur=1.0),
    "N": dict(f0=0.0, rng=1.0, level=0.0, tilt=0.0, jit=1.0, shim=1.0, br=0.0, rate=1.0, dur=1.0),
    "P": dict(f0=3.5, rng=1.6, level=2.0, tilt=0.2, jit=1.0, shim=1.0, br=0.05, rate=1.1, dur=1.0),
    "R": dict(
        f0=0.5, rng=1.1, level=-2.0, tilt=-0.1, jit=1.1, shim=1.1, br=0.05, rate=1.0, dur=1.0
    ),
}


@dataclasses.dataclass(frozen=True)
class Speaker:
    """A demo speaker: baseline voice before emotion offsets."""

    speaker: str
    gender: str  # "F", "M" or "unknown" (children)
    f0_hz: float
    formant_scale: float
    level_db: float


def _utterance_params(spk: Speaker, emotion: str, rng: np.random.Generator) -> VoiceParams:
    p = PROFILES[emotion]
    f0 = spk.f0_hz * 2 ** ((p["f0"] + 1.2 * rng.standard_normal()) / 12)
    return VoiceParams(
        f0_hz=float(f0),
        f0_range_st=float(max(0.5, 3.0 * p["rng"] * (1 + 0.2 * rng.standard_normal()))),
        level_db=float(spk.level_db + p["level"] + 3.5 * rng.standard_normal()),
        tilt=float(np.clip(p["tilt"] + 0.3 * rng.standard_normal(), -0.9, 0.9)),
        jitter=float(max(0.001, 0.008 * p["jit"] * (1 + 0.25 * rng.standard_normal()))),
        shimmer=float(max(0.005, 0.05 * p["shim"] * (1 + 0.25 * rng.standard_normal()))),
        breathiness=float(np.clip(0.08 + p["br"] + 0.04 * rng.standard_normal(), 0.0, 0.6)),
        rate_hz=float(4.0 * p["rate"] * (1 + 0.1 * rng.standard_normal())),
        formant_scale=float(spk.formant_scale * (1 + 0.03 * rng.standard_normal())),
        duration_s=float(np.clip(1.2 * p["dur"] * (1 + 0.2 * rng.standard_normal()), 0.6, 2.0)),
    )


def _write_wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16")


def _params_row(utt_id: str, spk: Speaker, emotion: str, vp: VoiceParams) -> dict:
    meta = {"utt_id": utt_id, "speaker": spk.speaker, "gender": spk.gender, "emotion": emotion}
    return meta | dataclasses.asdict(vp)


def make_demo_iemocap(root: PathLike, *, n_per_speaker: int, seed: int) -> pd.DataFrame:
    """Write an IEMOCAP-layout tree (5 sessions x F/M speakers) under ``root``.

    Each session holds two dialogues (``Ses0nF_impro01``, ``Ses0nM_script01_1``) in
    which both speakers talk, so the dialogue prefix does not name the speaker.
    Besides the four kept classes it writes ``fru``, ``sur`` and ``xxx`` turns and
    one turn whose wav is missing, which the adapter must exclude with a reason.

    Returns the generating parameters, also written to ``generating_params.csv``.
    """
    root = Path(root)
    base = np.random.SeedSequence([seed, 1])
    spk_rng = np.random.default_rng(base.spawn(1)[0])
    emotions = ["ang", "hap", "exc", "neu", "sad"]
    rows = []
    for session in range(1, 6):
        speakers = {
            g: Speaker(
                speaker=f"Ses{session:02d}{g}",
                gender=g,
                f0_hz=float((205.0 if g == "F" else 115.0) * 2 ** (spk_rng.normal(0, 1.5) / 12)),
                formant_scale=float((1.15 if g == "F" else 1.0) * (1 + spk_rng.normal(0, 0.03))),
                level_db=float(-42.0 + spk_rng.normal(0, 3.0)),
            )
            for g in ("F", "M")
        }
        dialogs = [f"Ses{session:02d}F_impro01", f"Ses{session:02d}M_script01_1"]
        turns: dict[str, list[str]] = {d: [] for d in dialogs}
        counters = {(d, g): 0 for d in dialogs for g in "FM"}
        for g, spk in speakers.items():
            for k in range(n_per_speaker + 2):
                dialog = dialogs[k % 2]
                idx = counters[(dialog, g)]
                counters[(dialog, g)] += 1
                utt_id = f"{dialog}_{g}{idx:03d}"
                if k == n_per_speaker:
                    emotion = ["fru", "sur"][session % 2]
                elif k == n_per_speaker + 1:
                    emotion = "xxx"
                else:
                    emotion = emotions[k % len(emotions)]
                rng = np.random.default_rng([seed, session, ord(g), k])
                vp = _utterance_params(spk, "neu" if emotion == "xxx" else emotion, rng)
                missing = session == 5 and g == "M" and k == 0
                if not missing:
                    wav = root / f"Session{session}/sentences/wav/{dialog}/{utt_id}.wav"
                    _write_wav(wav, synthesize(vp, rng=rng))
                rows.append(_params_row(utt_id, spk, emotion, vp) | {"wav_written": not missing})
                turns[dialog].append(_emo_eval_block(utt_id, emotion, len(turns[dialog]), vp))
        for dialog, blocks in turns.items():
            path = root / f"Session{session}/dialog/EmoEvaluation/{dialog}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            header = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
            path.write_text(header + "".join(blocks), encoding="utf-8")
    params = pd.DataFrame(rows)
    params.to_csv(root / "generating_params.csv", index=False)
    return params


def _emo_eval_block(utt_id: str, emotion: str, i: int, vp: VoiceParams) -> str:
    start = 3.0 * i + 1.0
    names = {
        "ang": "Anger",
        "hap": "Happiness",
        "exc": "Excited",
        "neu": "Neutral state",
        "sad": "Sadness",
        "fru": "Frustration",
        "sur": "Surprise",
        "xxx": "Other",
    }
    name = names[emotion]
    return (
        f"[{start:.4f} - {start + vp.duration_s:.4f}]\t{utt_id}\t{emotion}\t[2.5000, 3.0000, 2.5000]\n"
        f"C-E2:\t{name}; ()\n"
        f"C-E3:\t{name}; ()\n"
        f"C-F1:\t{name}; ()\n"
        "A-E3:\tval 3; act 3; dom  2; ()\n"
        "A-E4:\tval 2; act 3; dom  3; ()\n\n"
    )


def make_demo_aibo(root: PathLike, *, n_per_speaker: int, seed: int) -> pd.DataFrame:
    """Write a FAU-Aibo-layout tree: ``labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt``
    and ``wav/<chunk_id>.wav``; 8 Ohm children (train, of which dev is carved) and 6
    Mont children (test). Child numbers repeat across schools, as in the corpus.
    """
    root = Path(root)
    spk_rng = np.random.default_rng(np.random.SeedSequence([seed, 2]).spawn(1)[0])
    classes = ["A", "E", "N", "P", "R"]
    # the real corpus is dominated by N and R; keep that skew, milder
    weights = np.array([0.15, 0.2, 0.3, 0.1, 0.25])
    lines, rows = [], []
    for school, n_children in (("Ohm", 8), ("Mont", 6)):
        for child in range(1, n_children + 1):
            spk = Speaker(
                speaker=f"{school}_{child:02d}",
                gender="unknown",
                f0_hz=float(260.0 * 2 ** (spk_rng.normal(0, 1.5) / 12)),
                formant_scale=float(1.3 * (1 + spk_rng.normal(0, 0.04))),
                level_db=float(-44.0 + spk_rng.normal(0, 3.0)),
            )
            for k in range(n_per_speaker):
                rng = np.random.default_rng([seed, 7 if school == "Ohm" else 8, child, k])
                cls = classes[k] if k < len(classes) else str(rng.choice(classes, p=weights))
                chunk_id = f"{school}_{child:02d}_{k // 3 + 1:03d}_{k % 3:02d}"
                vp = _utterance_params(spk, cls, rng)
                _write_wav(root / "wav" / f"{chunk_id}.wav", synthesize(vp, rng=rng))
                conf = 0.6 + 0.4 * float(rng.random())
                lines.append(f"{chunk_id} {cls} {conf:.6f}\n")
                rows.append(_params_row(chunk_id, spk, cls, vp))
    label_file = root / "labels/IS2009EmotionChallenge/chunk_labels_5cl_corpus.txt"
    label_file.parent.mkdir(parents=True, exist_ok=True)
    label_file.write_text("".join(lines), encoding="utf-8")
    params = pd.DataFrame(rows)
    params.to_csv(root / "generating_params.csv", index=False)
    return params
