"""The demo generator: deterministic bytes, and emotion profiles that differ."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import soundfile as sf

from cueprobe.corpora import build_manifest
from cueprobe.corpora import demo


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    demo.make_demo_aibo(tmp_path / "a", n_per_speaker=2, seed=5)
    demo.make_demo_aibo(tmp_path / "b", n_per_speaker=2, seed=5)
    demo.make_demo_aibo(tmp_path / "c", n_per_speaker=2, seed=6)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_iemocap_demo_layout_and_profiles(tmp_path):
    params = demo.make_demo_iemocap(tmp_path, n_per_speaker=10, seed=3)
    manifest, excluded = build_manifest("iemocap", tmp_path)
    # 10 speakers, 5 sessions, F and M in every session
    assert manifest["speaker"].nunique() == 10
    assert set(manifest["session"]) == {f"Ses0{i}" for i in range(1, 6)}
    # the excluded categories and the one missing wav come back with reasons
    reasons = excluded["reason"].str.split(":").str[0].value_counts().to_dict()
    assert reasons == {"category_not_in_4way": 20, "missing_audio": 1}
    assert len(manifest) + len(excluded) == len(params)
    # 16 kHz, 16-bit mono
    info = sf.info(manifest["path"].iloc[0])
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    # emotion profiles measurably differ: mean F0 and level per class
    kept = params.set_index("utt_id").loc[manifest["utt_id"]]
    kept["label"] = manifest["label"].to_numpy()
    by = kept.groupby("label")
    f0 = by["f0_hz"].apply(lambda s: np.mean(12 * np.log2(s)))
    level = by["level_db"].mean()
    assert f0["happy"] > f0["neutral"] > f0["sad"]
    assert f0["angry"] > f0["neutral"]
    assert level["angry"] > level["neutral"] > level["sad"]


def test_aibo_demo_schools_and_classes(tmp_path):
    demo.make_demo_aibo(tmp_path, n_per_speaker=5, seed=1)
    manifest, excluded = build_manifest("aibo", tmp_path)
    assert excluded.empty
    assert set(manifest["label"]) == {"angry", "emphatic", "neutral", "positive", "rest"}
    assert manifest.groupby("split")["speaker"].nunique().to_dict() == {
        "dev": 2,
        "test": 6,
        "train": 6,
    }
    # the measured level of angry chunks exceeds that of rest chunks
    rms = manifest.assign(
        rms=[20 * np.log10(np.sqrt(np.mean(sf.read(p)[0] ** 2))) for p in manifest["path"]]
    )
    assert isinstance(rms, pd.DataFrame)
    per = rms.groupby("label")["rms"].mean()
    assert per["angry"] > per["rest"]
