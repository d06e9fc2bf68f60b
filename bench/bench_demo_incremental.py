"""Demo end to end: a cold run, then the incremental run after ``tokens.n_bins`` 5 -> 3.

In a throw-away working directory: ``snakemake --cores N`` on the demo config (cold:
demo audio, features, tokens, conditions, inference, evaluation), then the same
config with ``tokens.n_bins: 3`` (copied, never edited in place). Prints both wall
times, their ratio (goal <= 40 %), and the jobs of the incremental run per rule,
with the count of feature jobs and of ``audio_only`` jobs (goal 0 and 0). Jobs are
read from Snakemake's output and cross-checked against the ``benchmarks/`` TSVs
that the incremental run rewrote.

``--scale K`` multiplies every demo corpus's ``n_per_speaker`` (the demo's ~300 short
files make its token-independent work small; K shows how the ratio moves as the
audio grows towards a real corpus).

Usage::

    python bench/bench_demo_incremental.py [--config demo|e2e] [--scale 1] [--cores 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import _common
import yaml

CONFIGS = {
    "demo": _common.REPO / "config/config.yaml",
    "e2e": _common.REPO / "tests/e2e/config.yaml",
}
GOAL_RATIO = 0.40


def is_feature_job(job: _common.PlannedJob) -> bool:
    """A job that reads audio for features: writes under results/{corpus}/features."""
    return any("/features/" in out or out.endswith("/features.parquet") for out in job.outputs)


def is_audio_only_job(job: _common.PlannedJob) -> bool:
    return any("audio_only" in Path(out).name for out in job.outputs)


def rewritten_benchmarks(workdir: Path, since: float) -> list[str]:
    """Benchmark TSVs written after ``since`` (one per job that ran), relative paths."""
    return sorted(
        str(p.relative_to(workdir / "benchmarks"))
        for p in (workdir / "benchmarks").rglob("*.tsv")
        if p.stat().st_mtime >= since
    )


def job_seconds(workdir: Path, tsvs: list[str] | None = None) -> dict[str, float]:
    """Per rule: the summed wall time of its jobs (``s`` of each benchmark TSV)."""
    root = workdir / "benchmarks"
    paths = [root / t for t in tsvs] if tsvs is not None else list(root.rglob("*.tsv"))
    out: dict[str, float] = {}
    for path in paths:
        rule = path.relative_to(root).parts[0]
        seconds = float(path.read_text().splitlines()[1].split("\t")[0])
        out[rule] = out.get(rule, 0.0) + seconds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="demo")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--n-bins", type=int, default=3, help="the changed tokens.n_bins")
    parser.add_argument("--keep", type=Path, default=None, help="run here and keep it")
    parser.add_argument("--scale", type=int, default=1, help="x demo n_per_speaker")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench_demo_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        cold_config = workdir / "config.yaml"
        config = yaml.safe_load(CONFIGS[args.config].read_text())
        for corpus in config["corpora"].values():
            if "demo" in corpus:
                corpus["demo"]["n_per_speaker"] = args.scale * corpus["demo"]["n_per_speaker"]
        cold_config.write_text(yaml.safe_dump(config, sort_keys=False))
        old_bins = config.get("tokens", {}).get("n_bins", 5)
        config.setdefault("tokens", {})["n_bins"] = args.n_bins
        new_config = workdir / "config.n_bins.yaml"
        new_config.write_text(yaml.safe_dump(config, sort_keys=False))

        cores = ("--cores", str(args.cores))
        proc, t_cold = _common.snakemake(workdir, cold_config, *cores)
        cold_stats = _common.job_stats(proc.stdout + proc.stderr)
        cold_seconds = job_seconds(workdir)
        time.sleep(1.0)  # mtime resolution: separate the two runs' files
        since = time.time()
        proc, t_incr = _common.snakemake(workdir, new_config, *cores)
        text = proc.stdout + proc.stderr
        stats = _common.job_stats(text)
        jobs = [j for j in _common.planned_jobs(text) if j.rule != "all"]
        benchmarks = rewritten_benchmarks(workdir, since)

        n_feature = sum(map(is_feature_job, jobs))
        n_audio_only = sum(map(is_audio_only_job, jobs))
        bench_feature = [b for b in benchmarks if "feature" in b.split("/")[0]]
        bench_audio_only = [b for b in benchmarks if "audio_only" in b]

        print(
            f"config: {CONFIGS[args.config]} x{args.scale} n_per_speaker ({args.cores} cores), "
            f"n_bins {old_bins} -> {args.n_bins}"
        )
        print(f"cold run: {sum(cold_stats.values())} jobs")
        print("\nincremental run, jobs per rule:")
        for rule, count in stats.items():
            print(f"  {rule:32s} {count:5d}")
        print(
            f"  {'total':32s} {sum(stats.values()):5d}  ({len(benchmarks)} benchmark TSVs rewritten)"
        )
        incr_seconds = job_seconds(workdir, benchmarks)
        print(f"\njob seconds per rule (sum over its jobs; {args.cores} cores run them)")
        print(f"  {'rule':32s} {'cold':>7s} {'incr':>7s}")
        for rule in sorted(cold_seconds, key=cold_seconds.get, reverse=True):
            print(f"  {rule:32s} {cold_seconds[rule]:7.1f} {incr_seconds.get(rule, 0.0):7.1f}")
        total_cold, total_incr = sum(cold_seconds.values()), sum(incr_seconds.values())
        print(f"  {'total':32s} {total_cold:7.1f} {total_incr:7.1f}")
        print(f"\n{'measure':34s} {'value':>8s} {'goal':>8s}")
        print(f"{'cold run (s)':34s} {t_cold:8.1f}")
        print(f"{'incremental run (s)':34s} {t_incr:8.1f}")
        print(f"{'incremental / cold':34s} {t_incr / t_cold:8.2f} {'<= 0.40':>8s}")
        print(
            f"{'feature jobs (output / TSVs)':34s} {f'{n_feature} / {len(bench_feature)}':>8s} {'0':>8s}"
        )
        print(
            f"{'audio_only jobs (output / TSVs)':34s} "
            f"{f'{n_audio_only} / {len(bench_audio_only)}':>8s} {'0':>8s}"
        )
        if bench_feature or bench_audio_only:
            print("unexpected re-runs:", *bench_feature, *bench_audio_only, sep="\n  ")
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
