"""Helpers shared by the bench/ scripts: running Snakemake, synthetic corpora, job lists.

Every bench script runs the real ``Snakefile`` of this checkout with the venv's
``snakemake`` in a throw-away working directory (``--directory``), so that nothing
under the repository's ``results/`` is touched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "src"))

from cueprobe import io  # noqa: E402
from cueprobe.corpora import aibo  # noqa: E402
from cueprobe.corpora import iemocap  # noqa: E402
from cueprobe.define import EGEMAPS_LLDS  # noqa: E402

#: utterances per (split, label) of IEMOCAP (5,531; happy = happy + excited) and of
#: FAU-Aibo's 5-class chunks (Ohm = train + dev: 9,959; Mont = test: 8,257)
IEMOCAP_COUNTS = {"neutral": 1708, "happy": 1636, "angry": 1103, "sad": 1084}
AIBO_COUNTS = {
    "ohm": {"angry": 881, "emphatic": 2093, "neutral": 5590, "positive": 674, "rest": 721},
    "mont": {"angry": 611, "emphatic": 1508, "neutral": 5377, "positive": 215, "rest": 546},
}


def env() -> dict[str, str]:
    """The environment of every child: the venv first on PATH (jobs call ``python``)."""
    return os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def snakemake(
    workdir: Path, config: Path, *args: str, check: bool = True
) -> tuple[subprocess.CompletedProcess, float]:
    """Run this checkout's workflow in ``workdir``; return the process and its wall seconds."""
    cmd = [
        str(BIN / "snakemake"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        *args,
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc, seconds


def best_of(repeats: int, fn) -> tuple[float, object]:
    """Smallest wall time of ``repeats`` calls of ``fn() -> (result, seconds)``, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        result, seconds = fn()
        times.append(seconds)
    return min(times), result


def slurm_case() -> str:
    """Which start-up case is measured: the SLURM executor plugin installed, sbatch on PATH."""
    proc = subprocess.run(
        [str(BIN / "python"), "-m", "pip", "show", "snakemake-executor-plugin-slurm"],
        capture_output=True,
        text=True,
    )
    plugin = "installed" if proc.returncode == 0 else "not installed"
    sbatch = subprocess.run(["which", "sbatch"], capture_output=True, text=True).stdout.strip()
    return f"snakemake-executor-plugin-slurm {plugin} in {BIN.parent}; sbatch: {sbatch or 'absent'}"


@dataclass(frozen=True)
class PlannedJob:
    """One job of a dry run: its rule and its output files."""

    rule: str
    outputs: tuple[str, ...]


_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")


def planned_jobs(text: str) -> list[PlannedJob]:
    """The jobs a ``snakemake --dry-run`` printed (rule and outputs of each)."""
    jobs, rule = [], None
    for line in text.splitlines():
        match = _JOB.match(line.strip())
        if match:
            if rule is not None:
                jobs.append(PlannedJob(rule, ()))
            rule = match.group(1)
        elif rule is not None and line.strip().startswith(("output:", "jobid:")):
            outputs = ()
            if line.strip().startswith("output:"):
                outputs = tuple(p.strip() for p in line.split(":", 1)[1].split(","))
            jobs.append(PlannedJob(rule, outputs))
            rule = None
    return jobs


def job_stats(text: str) -> dict[str, int]:
    """``rule -> count`` from the first "Job stats" table Snakemake printed (empty: nothing to do)."""
    counts: dict[str, int] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Job stats:"):
            for row in lines[i + 3 :]:
                parts = row.split()
                if len(parts) != 2 or not parts[1].isdigit():
                    break
                if parts[0] != "total":
                    counts[parts[0]] = int(parts[1])
            break
    return counts


def iemocap_manifest(name: str, *, scale: float, rng: np.random.Generator) -> pd.DataFrame:
    """A synthetic IEMOCAP-sized manifest: 10 speakers in 5 sessions, Session 5 = test."""
    labels = [lab for lab, n in IEMOCAP_COUNTS.items() for _ in range(max(1, round(n * scale)))]
    labels = rng.permutation(labels)
    rows = []
    for i, label in enumerate(labels):
        session, gender = i % 5 + 1, "FM"[(i // 5) % 2]
        rows.append(
            {
                "utt_id": f"Ses{session:02d}{gender}_impro{i // 40:03d}_{gender}{i:05d}",
                "speaker": f"Ses{session:02d}{gender}",
                "gender": gender,
                "session": f"Ses{session:02d}",
                "split": "test" if session == 5 else "train",
                "label": label,
            }
        )
    return _finish(name, pd.DataFrame(rows), rng)


def aibo_manifest(name: str, *, scale: float, rng: np.random.Generator) -> pd.DataFrame:
    """A synthetic FAU-Aibo-sized manifest: 26 Ohm children (2 dev) and 25 Mont children (test)."""
    rows = []
    for school, n_children in (("ohm", 26), ("mont", 25)):
        labels = [
            lab for lab, n in AIBO_COUNTS[school].items() for _ in range(max(1, round(n * scale)))
        ]
        for i, label in enumerate(rng.permutation(labels)):
            child = i % n_children + 1
            speaker = f"{school.capitalize()}_{child:02d}"
            split = "test" if school == "mont" else ("dev" if child > 24 else "train")
            rows.append(
                {
                    "utt_id": f"{speaker}_{i:05d}",
                    "speaker": speaker,
                    "gender": "MF"[child % 2],
                    "session": school.capitalize(),
                    "split": split,
                    "label": label,
                }
            )
    return _finish(name, pd.DataFrame(rows), rng)


def _finish(name: str, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    df["path"] = [f"{name}/{u}.wav" for u in df["utt_id"]]  # made absolute by write_corpora
    df["label_raw"] = df["label"]
    df["duration_s"] = rng.uniform(0.5, 8.0, len(df))
    return df[list(io.TABLES["manifest"])].sort_values("utt_id", ignore_index=True)


def write_corpora(
    workdir: Path, *, scale: float = 1.0, shards: tuple[int, int] = (64, 256), seed: int = 0
) -> dict[str, dict]:
    """Write CSV sheets and manifests of an IEMOCAP-sized and a FAU-Aibo-sized corpus.

    The manifests go straight to ``results/{corpus}/manifest.parquet`` (after their
    sheets, so that Snakemake finds them up to date); the audio files are empty
    placeholders (planning stats them, nothing reads them). Returns
    the ``corpora`` block of the config.
    """
    rng = np.random.default_rng(seed)
    corpora = {}
    for (name, build, labels), n_shards in zip(
        (("iemocap", iemocap_manifest, iemocap.LABELS), ("aibo", aibo_manifest, aibo.LABELS)),
        shards,
        strict=True,
    ):
        manifest = build(name, scale=scale, rng=rng)
        # empty audio files: extraction jobs list their shard's audio as inputs
        audio = workdir / "audio" / name
        audio.mkdir(parents=True, exist_ok=True)
        manifest["path"] = [str(audio / f"{u}.wav") for u in manifest["utt_id"]]
        for path in manifest["path"]:
            Path(path).touch()
        sheet = workdir / "sheets" / f"{name}.csv"
        sheet.parent.mkdir(parents=True, exist_ok=True)
        manifest.drop(columns=["label_raw", "duration_s"]).to_csv(sheet, index=False)
        out = workdir / "results" / name
        out.mkdir(parents=True, exist_ok=True)
        io.write_table(manifest, out / "manifest.parquet", "manifest")
        io.write_table(
            pd.DataFrame({c: pd.Series(dtype=str) for c in io.TABLES["excluded"]}),
            out / "excluded.parquet",
            "excluded",
        )
        corpora[name] = {
            "adapter": "csv",
            "root": str(sheet),
            "labels": labels,
            "shards": n_shards,
        }
        if name == "iemocap":
            corpora[name]["gender_specific"] = ["PITCH", "FORMANTS"]
    return corpora


#: three models: the CPU reference and two ALMs (never loaded when planning)
MODELS = {
    "reference": {"backend": "reference", "zero_shot": False},
    "qwen2_audio": {
        "backend": "transformers",
        "model_id": "Qwen/Qwen2-Audio-7B-Instruct",
        "architecture": "qwen2_audio",
    },
    "omni": {
        "backend": "openai",
        "model_id": "Qwen/Qwen2.5-Omni-7B",
        "base_url": "http://localhost:8000/v1",
    },
}


def write_config(path: Path, corpora: dict, models: dict, **extra) -> Path:
    """Write a config file with the given corpora and models (schema defaults elsewhere)."""
    config = {"seed": 20260605, "corpora": corpora, "models": models} | extra
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def synthetic_features(manifest: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A features table (the extraction contract) with plausible random LLD means."""
    n = len(manifest)
    df = pd.DataFrame({"utt_id": manifest["utt_id"].to_numpy()})
    for k, name in enumerate(EGEMAPS_LLDS):
        df[name] = rng.normal(10.0 + k, 1.0 + 0.1 * k, n)
    df["n_frames"] = rng.integers(50, 800, n)
    df["voiced_ratio"] = rng.uniform(0.0, 1.0, n)
    df["status"] = "ok"
    return df


def peak_rss_mb(cmd: list[str], *, cwd: Path | None = None) -> tuple[float, float]:
    """Run ``cmd`` under ``/usr/bin/time -v``; return (peak RSS in MB, wall seconds)."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], cwd=cwd, env=env(), capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
    kb = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return int(kb.group(1)) / 1024, seconds
