"""Peak memory (RSS) of each CPU rule at the 28k-utterance scale, against a 2 GB goal.

A real 28k run with audio is too slow here, so the run is split by what needs audio:

1. At scale (IEMOCAP + FAU-Aibo sized ``csv`` corpora, 28k utterances, default
   conditions): the manifests are written directly, the per-shard feature tables are
   synthetic (the extraction contract, random LLD means) and the model outputs
   (reference classifiers, predictions of every model and condition) are synthetic
   too, built with the same library calls ``cueprobe infer`` makes after its backend
   answers. Everything else runs for real through Snakemake (gather, tokens,
   conditions, evaluation, whatever the workflow holds), and each rule's peak is the
   largest ``max_rss`` of its ``benchmarks/{rule}/**.tsv``. Snakemake samples RSS
   every 0.5 s, so the largest job of each rule is re-run by its exact shell command
   (``snakemake -n -p -f``) under ``/usr/bin/time -v`` for the kernel's peak.
2. Audio rules (feature extraction, reference training and inference) run on two
   generated demo corpora of ``--files`` files in one shard; their growth per file
   is extrapolated to the largest shard / corpus of the 28k run.

Usage::

    python bench/bench_memory.py [--scale 1.0] [--files 50 160] [--n-resamples 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
from pathlib import Path

import _common
import numpy as np
import pandas as pd
import yaml

GOAL_MB = 2048.0
# outputs that need audio or a model
AUDIO_DIRS = ("/features/", "/embeddings/", "/models/", "/predictions/")


def needs_audio(job: _common.PlannedJob) -> bool:
    """Feature extraction shards and model jobs: synthesized at scale, measured on the demo."""
    return any(d in out for out in job.outputs for d in AUDIO_DIRS) and not any(
        out.endswith("/features.parquet") for out in job.outputs
    )


def schema_defaults(block: str) -> dict:
    schema = yaml.safe_load((_common.REPO / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"][block]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}


def synthesize(workdir: Path, jobs: list[_common.PlannedJob], config: dict, rng) -> list[str]:
    """Write the outputs of audio/model jobs; return every file written."""
    from cueprobe import io
    from cueprobe.backends.base import BackendInfo
    from cueprobe.backends.reference import embedding_columns
    from cueprobe.corpora import eval_splits
    from cueprobe.features import select_shard
    from cueprobe.inference import audio_dependence
    from cueprobe.inference import build_requests
    from cueprobe.inference import predictions_table
    from cueprobe.prompts import PromptTemplates

    templates = PromptTemplates(**schema_defaults("prompts"))
    written, manifests = [], {}
    for job in jobs:
        for out in job.outputs:
            path = workdir / out
            path.parent.mkdir(parents=True, exist_ok=True)
            parts = Path(out).parts  # results/{corpus}/...
            corpus = parts[1]
            if corpus not in manifests:
                manifests[corpus] = io.read_table(
                    workdir / f"results/{corpus}/manifest.parquet", "manifest"
                )
            manifest = manifests[corpus]
            if parts[2] == "features" and out.endswith(".parquet"):
                n_shards = config["corpora"][corpus]["shards"]
                rows = select_shard(manifest, shard=int(Path(out).stem), n_shards=n_shards)
                io.write_table(_common.synthetic_features(rows, rng), path, "features")
            elif parts[2] == "embeddings":
                columns = embedding_columns()
                values = rng.standard_normal((len(manifest), len(columns)))
                table = pd.DataFrame(values, columns=columns)
                table.insert(0, "utt_id", manifest["utt_id"].to_numpy())
                io.write_table(table, path, "embeddings")
            elif parts[2] == "predictions" and out.endswith(".parquet"):
                model, condition = parts[3], Path(out).stem
                cfg = config["models"][model]
                cond = io.read_table(
                    workdir / f"results/{corpus}/conditions/{condition}.parquet", "conditions"
                )
                labels = config["corpora"][corpus]["labels"]
                splits = eval_splits(
                    config["corpora"][corpus], zero_shot=cfg.get("zero_shot", True)
                )
                frame = build_requests(
                    manifest, cond, templates=templates, labels=list(labels), splits=splits
                )
                truth = frame["label"].to_numpy()
                guess = rng.choice(list(labels), len(frame))
                answer = np.where(rng.random(len(frame)) < 0.5, truth, guess)
                answer = np.where(rng.random(len(frame)) < 0.03, "I cannot tell.", answer)
                info = BackendInfo(cfg.get("model_id", model), "main", "greedy; max_new_tokens=16")
                table = predictions_table(
                    frame, dict(zip(frame["utt_id"], answer, strict=True)), info=info, labels=labels
                )
                io.write_table(table, path, "predictions")
                check = audio_dependence(table)
                (path.with_suffix(".check.json")).write_text(
                    json.dumps(check.__dict__, default=str)
                )
            elif not path.exists():
                path.write_bytes(b"")  # classifier files and the like: never read downstream here
            written.append(out)
    return written


def rule_peaks(workdir: Path) -> pd.DataFrame:
    """Per rule: jobs, largest max_rss (MB) and the file of that job, from benchmarks/."""
    rows = []
    for tsv in (workdir / "benchmarks").rglob("*.tsv"):
        bench = pd.read_csv(tsv, sep="\t")
        rss = pd.to_numeric(bench["max_rss"], errors="coerce").max()
        rule = tsv.relative_to(workdir / "benchmarks").parts[0]
        rows.append({"rule": rule, "max_rss": rss, "s": bench["s"].max(), "tsv": str(tsv)})
    df = pd.DataFrame(rows, columns=["rule", "max_rss", "s", "tsv"])
    idx = df.fillna({"max_rss": -1}).groupby("rule")["max_rss"].idxmax()
    peaks = df.loc[idx].set_index("rule")
    peaks["jobs"] = df.groupby("rule").size()
    return peaks


def shell_of(workdir: Path, config: Path, target: str, rule: str) -> str | None:
    """The shell command Snakemake runs for ``target`` (from a forced dry run).

    Only the rule that writes ``target`` may run: a forced target must not pull in
    upstream jobs (synthetic model outputs would then be "re-made" by real models).
    """
    proc, _ = _common.snakemake(
        workdir, config, "-n", "-p", "-f", target, "--allowed-rules", rule, check=False
    )
    text = proc.stdout + proc.stderr
    match = re.search(r"^Shell command: (python -m cueprobe .*?)\s*$", text, flags=re.M)
    return match.group(1) if match else None


def exact_peak(workdir: Path, config: Path, target: str, rule: str) -> float | None:
    cmd = shell_of(workdir, config, target, rule)
    if cmd is None:
        return None
    log = re.search(r"2> (\S+)$", cmd)  # a job that never ran here has no log folder yet
    if log:
        (workdir / log[1].strip("'")).parent.mkdir(parents=True, exist_ok=True)
    peak, _ = _common.peak_rss_mb(
        ["bash", "-c", cmd.replace("python -m", f"{_common.BIN}/python -m", 1)], cwd=workdir
    )
    return peak


def target_of(tsv: str, workdir: Path, jobs: list[_common.PlannedJob]) -> str | None:
    """An output file of the job that wrote benchmark ``tsv`` (matched by wildcards in the path)."""
    rel = Path(tsv).relative_to(workdir / "benchmarks")
    rule, keys = rel.parts[0], re.split(r"[/.]", str(Path(*rel.parts[1:]).with_suffix("")))
    for job in jobs:
        if job.rule == rule and job.outputs and all(k in job.outputs[0] for k in keys):
            return job.outputs[0]
    return None


def at_scale(workdir: Path, args) -> tuple[pd.DataFrame, dict]:
    corpora = _common.write_corpora(workdir, scale=args.scale, shards=tuple(args.shards))
    extra = {"evaluation": {"n_resamples": args.n_resamples}}
    if not args.all_conditions:  # fewer jobs; evaluate_model's peak grows with the grid
        extra["interventions"] = {
            "shuffle_seeds": [0, 1],
            "corrupt_p": [0.0, 0.5, 1.0],
            "corrupt_seeds": [0, 1],
        }
    models = {k: _common.MODELS[k] for k in ("reference", "qwen2_audio")}
    config_path = _common.write_config(workdir / "config.yaml", corpora, models, **extra)
    config = yaml.safe_load(config_path.read_text())
    rng = np.random.default_rng(0)
    proc, _ = _common.snakemake(workdir, config_path, "--dry-run")
    jobs = _common.planned_jobs(proc.stdout + proc.stderr)
    all_jobs = list(jobs)
    features = [j for j in jobs if needs_audio(j) and "/features/" in j.outputs[0]]
    model_jobs = [j for j in jobs if needs_audio(j) and j not in features]
    model_rules = sorted({j.rule for j in model_jobs})
    cores = ("--cores", str(args.cores))
    # 1. synthetic shards, marked up to date; then everything that needs no model
    # written after their inputs, so up to date without `--touch` (no metadata: no rerun triggers)
    synthesize(workdir, features, config, rng)
    omit = ("--omit-from", *model_rules) if model_rules else ()
    _common.snakemake(workdir, config_path, *cores, *omit)
    # 2. synthetic model outputs; then the rest (evaluation and onwards)
    if model_jobs:
        synthesize(workdir, model_jobs, config, rng)
        proc, _ = _common.snakemake(workdir, config_path, "--dry-run")
        all_jobs += _common.planned_jobs(proc.stdout + proc.stderr)
        _common.snakemake(workdir, config_path, *cores)
    peaks = rule_peaks(workdir)
    peaks["time_v"] = [
        exact_peak(workdir, config_path, t, rule)
        if (t := target_of(tsv, workdir, all_jobs))
        else None
        for rule, tsv in zip(peaks.index, peaks["tsv"], strict=True)
    ]
    sizes = {c: len(pd.read_parquet(workdir / f"results/{c}/manifest.parquet")) for c in corpora}
    feature_rules = sorted({j.rule for j in features})
    # the reference model trains from the (synthetic) embeddings table: run it for real at
    # scale on the largest corpus, under time -v, instead of projecting it from the demo
    largest = max(sizes, key=sizes.get)
    trained = {
        rule: exact_peak(
            workdir, config_path, f"results/{largest}/models/reference/reference_{kind}.pkl", rule
        )
        for rule, kind in (("train_reference_audio", "audio"), ("train_reference_tokens", "tokens"))
    }
    # and then answers with it, for real: the embeddings table means no audio is decoded
    # (the manifest's files exist, empty, for the answer keys' content hash)
    for rule, condition in (
        ("query_audio_only", "audio_only"),
        ("query_token_conditions", "aligned"),
    ):
        target = f"results/{largest}/predictions/reference/{condition}.parquet"
        trained[rule] = exact_peak(workdir, config_path, target, rule)
    return peaks, {
        "trained": trained,
        "largest": largest,
        "sizes": sizes,
        "feature_rules": feature_rules,
        "synthesized": feature_rules + model_rules,
    }


def audio_rules(workdir: Path, n_files: int, args) -> pd.DataFrame:
    """Peaks of the audio rules on a demo corpus of ``n_files`` files in one shard."""
    corpora = {
        "demo": {
            "adapter": "demo-iemocap",
            # 10 speakers; 5 utterances each at least (the config's minimum: one per class)
            "demo": {"n_per_speaker": max(5, n_files // 10), "seed": 1},
            "shards": 1,
        }
    }
    config = _common.write_config(
        workdir / "config.yaml", corpora, {"reference": _common.MODELS["reference"]}
    )
    proc, _ = _common.snakemake(workdir, config, "--dry-run")
    jobs = [j for j in _common.planned_jobs(proc.stdout + proc.stderr) if needs_audio(j)]
    keep = [
        j.outputs[0]
        for j in jobs
        if not any("/predictions/" in o for o in j.outputs)
        or any(Path(o).stem in ("audio_only", "aligned") for o in j.outputs)
    ]
    _common.snakemake(workdir, config, "--cores", str(args.cores), *keep)
    peaks = rule_peaks(workdir)
    # Snakemake samples RSS every 0.5 s, so a job of a second can end before its peak is
    # sampled (the 20-file embedding job read 95 MB, its kernel peak 135 MB): the growth
    # per file, and so the projection, came out of the sampling. The kernel's peak instead
    for rule in sorted({j.rule for j in jobs} & set(peaks.index)):
        target = target_of(peaks.loc[rule, "tsv"], workdir, jobs)
        exact = exact_peak(workdir, config, target, rule) if target else None
        if exact is not None:
            peaks.loc[rule, "max_rss"] = exact
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="corpus size factor (1 = 28k)")
    parser.add_argument(
        "--shards", type=int, nargs=2, default=[64, 256], metavar=("IEMOCAP", "AIBO")
    )
    parser.add_argument(
        "--files", type=int, nargs=2, default=[50, 160], help="demo sizes for audio rules"
    )
    parser.add_argument(
        "--n-resamples", type=int, default=10000, help="config evaluation.n_resamples"
    )
    parser.add_argument(
        "--all-conditions", action="store_true", help="every default condition (default: 11 of 33)"
    )
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="build here and keep it")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_memory_"))
    try:
        (root / "scale").mkdir(parents=True, exist_ok=True)
        peaks, info = at_scale(root / "scale", args)
        small = []
        for n in args.files:
            (root / f"demo{n}").mkdir(parents=True, exist_ok=True)
            small.append(audio_rules(root / f"demo{n}", n, args))
        sizes = info["sizes"]
        n_total = sum(sizes.values())
        largest_shard = max(n / s for n, s in zip(sizes.values(), args.shards, strict=True))

        print(
            f"at scale: {sizes} = {n_total} utterances; shards {args.shards}; "
            f"synthesized: {', '.join(info['synthesized']) or '-'}"
        )
        print(
            f"\n{'rule':30s} {'jobs':>5s} {'max_rss MB':>10s} {'time -v MB':>10s} {'goal MB':>8s} {'ratio':>6s}"
        )
        for rule, row in peaks.sort_values("max_rss", ascending=False).iterrows():
            peak = np.nanmax([row["max_rss"], row["time_v"]])
            tv = f"{'n/a':>10s}" if pd.isna(row["time_v"]) else f"{row['time_v']:10.0f}"
            print(
                f"{rule:30s} {row['jobs']:5d} {row['max_rss']:10.0f} {tv} {GOAL_MB:8.0f} {peak / GOAL_MB:6.2f}"
            )

        (n1, n2), (a, b) = args.files, small
        print(
            f"\naudio rules (time -v) on demo corpora of {n1} and {n2} files (one shard); "
            f"projected to the largest 28k shard (~{largest_shard:.0f} files) / corpus ({max(sizes.values())}):"
        )
        print(
            f"{'rule':30s} {f'MB@{n1}':>8s} {f'MB@{n2}':>8s} {'MB/file':>8s} {'projected':>9s} {'ratio':>6s}"
        )
        for rule in sorted(set(a.index) & set(b.index)):
            if rule not in info["synthesized"] or rule in info["trained"]:
                continue
            r1, r2 = a.loc[rule, "max_rss"], b.loc[rule, "max_rss"]
            per_file = (r2 - r1) / (n2 - n1)
            n_at_scale = largest_shard if rule in info["feature_rules"] else max(sizes.values())
            projected = r2 + per_file * (n_at_scale - n2)
            print(
                f"{rule:30s} {r1:8.0f} {r2:8.0f} {per_file:8.3f} {projected:9.0f} {projected / GOAL_MB:6.2f}"
            )
        print(
            f"\nreference model at scale ({info['largest']}, {sizes[info['largest']]} "
            "utterances, synthetic embeddings; inference on its held-out splits), time -v:"
        )
        for rule, peak in info["trained"].items():
            shown = "n/a" if peak is None else f"{peak:.0f} MB ({peak / GOAL_MB:.2f} of goal)"
            print(f"{rule:30s} {shown}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
