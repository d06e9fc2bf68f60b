"""Planning at scale: ``snakemake --dry-run`` and a no-op run over 28k utterances.

Builds a throw-away working directory with two ``csv`` corpora the size of IEMOCAP
(5,531 utterances, 64 extraction shards) and FAU-Aibo (18,216 chunks, 256 shards),
three models (the reference and two ALMs, never loaded when planning) and every
default condition (5 shuffle seeds, 5 x 5 corruptions). The manifests are written
directly, so no audio is needed. Then it times, best of ``--repeats``:

- ``snakemake --version`` (start-up alone, for reference);
- ``snakemake --dry-run`` of the full default target (goal < 5 s on 2 cores);
- a no-op run once every output the DAG lists exists (goal < 5 s): outputs are
  created empty and marked up to date with ``snakemake --touch``, and the run must
  report nothing to do.

Usage::

    python bench/bench_planning.py [--scale 1.0] [--shards 64 256] [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import _common

GOAL_S = 5.0


def create_outputs(workdir: Path, config: Path, *, rounds: int = 3) -> int:
    """Create every output of the full DAG and mark it up to date; return the job count made."""
    made = 0
    for _ in range(rounds):  # checkpoints reveal more jobs once their outputs exist
        proc, _ = _common.snakemake(workdir, config, "--dry-run")
        jobs = [j for j in _common.planned_jobs(proc.stdout) if j.rule != "all"]
        if not jobs:
            return made
        for job in jobs:
            for out in job.outputs:
                path = workdir / out
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.exists():
                    path.touch()
        made += len(jobs)
        _common.snakemake(workdir, config, "--touch", "--forceall", "--cores", "1")
    proc, _ = _common.snakemake(workdir, config, "--dry-run")
    left = _common.job_stats(proc.stdout)
    raise RuntimeError(f"still jobs to do after {rounds} rounds of --touch: {left}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="corpus size factor (1 = 28k)")
    parser.add_argument(
        "--shards", type=int, nargs=2, default=[64, 256], metavar=("IEMOCAP", "AIBO")
    )
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--keep", type=Path, default=None, help="build here and keep it")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench_planning_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        corpora = _common.write_corpora(workdir, scale=args.scale, shards=tuple(args.shards))
        config = _common.write_config(workdir / "config.yaml", corpora, _common.MODELS)
        n_utts = sum(
            len(_common.pd.read_parquet(workdir / f"results/{c}/manifest.parquet")) for c in corpora
        )
        print(f"case: {_common.slurm_case()}")
        print(
            f"workdir: {workdir}; {n_utts} utterances, shards {args.shards}, {len(_common.MODELS)} models"
        )

        def version():
            start = time.perf_counter()
            _common.subprocess.run(
                [str(_common.BIN / "snakemake"), "--version"], capture_output=True, check=True
            )
            return None, time.perf_counter() - start

        t_version, _ = _common.best_of(args.repeats, version)
        t_dry, proc = _common.best_of(
            args.repeats, lambda: _common.snakemake(workdir, config, "--dry-run")
        )
        stats = _common.job_stats(proc.stdout)
        n_jobs = sum(stats.values())

        start = time.perf_counter()
        create_outputs(workdir, config)
        t_touch = time.perf_counter() - start
        t_noop, proc = _common.best_of(
            args.repeats, lambda: _common.snakemake(workdir, config, "--cores", "2")
        )
        noop_stats = _common.job_stats(proc.stdout)
        nothing = "Nothing to be done" in proc.stdout + proc.stderr and not noop_stats

        print("\njobs in the DAG (dry run):")
        for rule, count in stats.items():
            print(f"  {rule:32s} {count:6d}")
        print(f"  {'total':32s} {n_jobs:6d}")
        print(f"\n(setup: creating and touching every output took {t_touch:.1f} s)")
        print(
            f"no-op run reports nothing to do: {nothing}" + ("" if nothing else f" -> {noop_stats}")
        )
        print(f"\n{'measure':28s} {'seconds':>8s} {'goal':>6s} {'ratio':>6s}")
        print(f"{'snakemake --version':28s} {t_version:8.2f} {'':>6s} {'':>6s}")
        for name, seconds in (("dry run (full DAG)", t_dry), ("no-op run", t_noop)):
            print(f"{name:28s} {seconds:8.2f} {GOAL_S:6.1f} {seconds / GOAL_S:6.2f}")
        per_job = (t_dry - t_version) / max(n_jobs, 1) * 1000
        print(f"\nplanning beyond start-up: {per_job:.2f} ms per job ({n_jobs} jobs)")
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
