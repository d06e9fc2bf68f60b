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
audio grows towards a real corpus). ``--repeats R`` runs the pair R times, each in a
fresh directory, and reports the median ratio (a shared machine moves a single pair's
ratio by +-0.05). Besides wall times it prints the ratio of summed job seconds, the
ratio the design would give with no Snakemake start-up and perfect packing.

Usage::

    python bench/bench_demo_incremental.py [--config demo|e2e] [--scale 1] [--cores 2]
                                           [--repeats 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
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


def run_pair(workdir: Path, args: argparse.Namespace) -> dict:
    """A cold run, then the run after the ``n_bins`` change, in ``workdir``."""
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
    benchmarks = rewritten_benchmarks(workdir, since)
    return {
        "old_bins": old_bins,
        "t_cold": t_cold,
        "t_incr": t_incr,
        "cold_jobs": sum(cold_stats.values()),
        "stats": _common.job_stats(text),
        "jobs": [j for j in _common.planned_jobs(text) if j.rule != "all"],
        "benchmarks": benchmarks,
        "cold_seconds": cold_seconds,
        "incr_seconds": job_seconds(workdir, benchmarks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="demo")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--n-bins", type=int, default=3, help="the changed tokens.n_bins")
    parser.add_argument("--keep", type=Path, default=None, help="run here and keep it")
    parser.add_argument("--scale", type=int, default=1, help="x demo n_per_speaker")
    parser.add_argument("--repeats", type=int, default=1, help="pairs run, median reported")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_demo_"))
    runs = []
    try:
        for r in range(args.repeats):
            workdir = root if args.repeats == 1 else root / f"run{r}"
            workdir.mkdir(parents=True, exist_ok=True)
            runs.append(run_pair(workdir, args))
            print(f"pair {r + 1}/{args.repeats}: cold {runs[-1]['t_cold']:.1f} s, "
                  f"incremental {runs[-1]['t_incr']:.1f} s", flush=True)  # fmt: skip
            if args.keep is None and args.repeats > 1:
                shutil.rmtree(workdir, ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    report(runs, args)


def report(runs: list[dict], args: argparse.Namespace) -> None:
    """Print the last pair's jobs and job seconds, then every pair's ratio and the median."""
    last = runs[-1]
    stats, jobs, benchmarks = last["stats"], last["jobs"], last["benchmarks"]
    n_feature = sum(map(is_feature_job, jobs))
    n_audio_only = sum(map(is_audio_only_job, jobs))
    bench_feature = [b for b in benchmarks if "feature" in b.split("/")[0]]
    bench_audio_only = [b for b in benchmarks if "audio_only" in b]

    print(
        f"\nconfig: {CONFIGS[args.config]} x{args.scale} n_per_speaker ({args.cores} cores), "
        f"n_bins {last['old_bins']} -> {args.n_bins}"
    )
    print(f"cold run: {last['cold_jobs']} jobs")
    print("\nincremental run, jobs per rule:")
    for rule, count in stats.items():
        print(f"  {rule:32s} {count:5d}")
    print(f"  {'total':32s} {sum(stats.values()):5d}  ({len(benchmarks)} benchmark TSVs rewritten)")
    cold_seconds, incr_seconds = last["cold_seconds"], last["incr_seconds"]
    print(f"\njob seconds per rule (sum over its jobs; {args.cores} cores run them)")
    print(f"  {'rule':32s} {'cold':>7s} {'incr':>7s}")
    for rule in sorted(cold_seconds, key=cold_seconds.get, reverse=True):
        print(f"  {rule:32s} {cold_seconds[rule]:7.1f} {incr_seconds.get(rule, 0.0):7.1f}")
    print(f"  {'total':32s} {sum(cold_seconds.values()):7.1f} {sum(incr_seconds.values()):7.1f}")

    print(f"\n{'pair':>4s} {'cold (s)':>9s} {'incr (s)':>9s} {'ratio':>6s} {'job-s ratio':>12s}")
    ratios, job_ratios = [], []
    for i, run in enumerate(runs, 1):
        ratios.append(run["t_incr"] / run["t_cold"])
        job_ratios.append(sum(run["incr_seconds"].values()) / sum(run["cold_seconds"].values()))
        print(f"{i:4d} {run['t_cold']:9.1f} {run['t_incr']:9.1f} {ratios[-1]:6.2f} "
              f"{job_ratios[-1]:12.2f}")  # fmt: skip
    print(f"\n{'measure':34s} {'value':>8s} {'goal':>8s}")
    print(f"{'cold run, median (s)':34s} {statistics.median(r['t_cold'] for r in runs):8.1f}")
    print(
        f"{'incremental run, median (s)':34s} {statistics.median(r['t_incr'] for r in runs):8.1f}"
    )
    print(f"{'incremental / cold, median':34s} {statistics.median(ratios):8.2f} {'<= 0.40':>8s}")
    print(f"{'job seconds incr / cold, median':34s} {statistics.median(job_ratios):8.2f}")
    print(
        f"{'feature jobs (output / TSVs)':34s} {f'{n_feature} / {len(bench_feature)}':>8s} {'0':>8s}"
    )
    print(
        f"{'audio_only jobs (output / TSVs)':34s} "
        f"{f'{n_audio_only} / {len(bench_audio_only)}':>8s} {'0':>8s}"
    )
    if bench_feature or bench_audio_only:
        print("unexpected re-runs:", *bench_feature, *bench_audio_only, sep="\n  ")


if __name__ == "__main__":
    main()
