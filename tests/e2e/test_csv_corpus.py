"""A corpus brought as a CSV sheet runs end to end (path with a space, one seed per grid)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import soundfile

from cueprobe import io
from tests.e2e.conftest import snakemake

pytestmark = pytest.mark.slow

CONFIG = """seed: 3
corpora:
  my_corpus:
    adapter: csv
    root: "{sheet}"
    labels: {{angry: [anger], happy: [joy], neutral: [], sad: [sadness]}}
    gender_specific: [PITCH]
    shards: 2
models:
  reference: {{backend: reference, zero_shot: false}}
  reference_sharded: {{backend: reference, zero_shot: false, shards: 2}}
interventions: {{shuffle_seeds: [0], corrupt_p: [0.0, 1.0], corrupt_seeds: [0]}}
evaluation: {{n_resamples: 200}}
"""


def test_csv_corpus_end_to_end(demo_run, tmp_path):
    manifest = io.read_table(demo_run / "results/demo_iemocap/manifest.parquet", "manifest")
    sheet = manifest[["path", "label", "speaker", "gender", "split"]].copy()
    # the demo's paths are relative to its working directory (its root is written so)
    assert not any(Path(p).is_absolute() for p in sheet["path"])
    sheet["path"] = [str(demo_run / p) for p in sheet["path"]]
    sheet.loc[0, "label"] = "bored"  # outside the label set: excluded with its reason
    folder = tmp_path / "my data"
    folder.mkdir()
    # a float file past full scale: analysed clipped, so status clipped, and said at the end
    samples, rate = soundfile.read(sheet.loc[1, "path"], dtype="float32")
    soundfile.write(folder / "hot.wav", samples / max(abs(samples)) * 2, rate, subtype="FLOAT")
    sheet.loc[1, "path"] = str(folder / "hot.wav")
    sheet.to_csv(folder / "sheet.csv", index=False)
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(sheet=folder / "sheet.csv"))
    workdir = tmp_path / "run"
    proc = snakemake(workdir, "--cores", "2", config=config)

    excluded = io.read_table(workdir / "results/my_corpus/excluded.parquet", "excluded")
    assert excluded["reason"].tolist() == ["label_not_in_set: bored (line 2)"]
    # and the run says so at its end, not only in the manifest job's log
    assert (
        "my_corpus: 1 utterance(s) left out of the manifest (label_not_in_set 1)"
        in proc.stdout + proc.stderr
    )
    assert (
        f"my_corpus: 1 of {len(manifest) - 1} audio file(s) not analysed as they sound (clipped 1)"
    ) in proc.stdout + proc.stderr
    tokens = io.read_table(workdir / "results/my_corpus/tokens.parquet", "tokens")
    hot = tokens["flag"].str.startswith("clipped")
    assert hot.sum() == 1 and tokens.loc[hot, "score_ENERGY"].notna().all()  # measured
    kept = io.read_table(workdir / "results/my_corpus/manifest.parquet", "manifest")
    assert len(kept) == len(manifest) - 1
    table3 = pd.read_csv(workdir / "results/tables/table3.csv")
    assert "reference" in set(table3.astype(str).stack())
    comparisons = pd.read_parquet(
        workdir / "results/my_corpus/evaluation/reference/comparisons.parquet"
    )
    assert {"shuffle", "conflict", "corrupt_p100"} <= set(comparisons["b"]) | set(comparisons["a"])

    # a model answered in 2 utterance shards per group (audio_only; the token conditions)
    # gives the same tables as one job (same training data and seed: the same classifier)
    folder = workdir / "results/my_corpus/predictions"
    shards = sorted(p.name for p in (folder / "reference_sharded/shards").glob("*.parquet"))
    assert shards == [f"{g}.shard{k}.parquet" for g in ("audio_only", "tokens") for k in (0, 1)]
    for name in shards:  # both shards hold utterances, the same ones for every condition
        part = io.read_table(folder / "reference_sharded/shards" / name, "prediction_shard")
        per_condition = part.groupby("condition")["utt_id"].apply(frozenset)
        assert len(part) and per_condition.nunique() == 1
    for condition in ("audio_only", "aligned", "corrupt_p100_s0"):
        one = pd.read_parquet(folder / f"reference/{condition}.parquet")
        two = pd.read_parquet(folder / f"reference_sharded/{condition}.parquet")
        pd.testing.assert_frame_equal(one, two)
        assert (folder / f"reference_sharded/{condition}.check.json").exists()
