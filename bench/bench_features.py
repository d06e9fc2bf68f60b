"""Feature extraction of the pipeline vs plain openSMILE on the same files and cores.

Times :func:`cueprobe.features.extract_features` (read, mix/resample/clip, LLDs,
voicing-correct means) against ``opensmile.Smile(...).process_files`` (LLDs only)
over N generated demo files, alternating the two, and prints both times and the
ratio (goal <= 1.15). Compare timings only within one machine.

    python bench/bench_features.py --n-per-speaker 8 --workers 2 --repeats 3
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import opensmile

from cueprobe.corpora import build_manifest
from cueprobe.corpora.demo import make_demo_iemocap
from cueprobe.features import extract_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n-per-speaker", type=int, default=8, help="demo utterances per speaker (10 speakers)"
    )
    parser.add_argument("--workers", type=int, default=1, help="files in parallel, both sides")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        make_demo_iemocap(root, n_per_speaker=args.n_per_speaker, seed=0)
        manifest, _ = build_manifest("iemocap", root)
        files = manifest["path"].tolist()
        smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02,
            feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
            num_workers=args.workers,
        )
        smile.process_files(files[:2])  # warm-up
        ours, theirs = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            extract_features(manifest, min_duration_s=0.06, n_workers=args.workers)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            smile.process_files(files)
            theirs.append(time.perf_counter() - t)
    a, b = float(np.median(ours)), float(np.median(theirs))
    print(f"files={len(files)} workers={args.workers} repeats={args.repeats}")
    print(f"cueprobe extract_features: {a:.3f} s (median)")
    print(f"opensmile process_files:   {b:.3f} s (median)")
    print(f"ratio: {a / b:.3f} (goal <= 1.15)")


if __name__ == "__main__":
    main()
