"""Throughput of the ``transformers`` backend at batch size 1 versus batch size 16.

Builds tiny random-weight models of the real architectures (``tests/tiny_models.py``),
answers the same requests one at a time and 16 at a time, and prints requests per second
and their ratio (goal: >= 4x on CPU). Then, on the token conditions of a few utterances
(``--conditions`` prompts each, utterance-major as ``cueprobe infer`` sends them), the
throughput with the prompt prefix shared (prefilled once per utterance) against not
shared, batch ``--batch-size`` either way. Runs unchanged on a GPU: the device is
``cuda`` when ``torch.cuda.is_available()``, else ``cpu``.

Usage::

    python bench/bench_batching.py [--arch qwen2_audio ...] [--n-requests 48] [--repeats 3]
                                   [--chunk-length 5] [--conditions 16] [--utterances 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import tiny_models  # noqa: E402

from cueprobe.backends.base import Request  # noqa: E402
from cueprobe.backends.hf import TransformersBackend  # noqa: E402

BUILDERS = {
    "qwen2_audio": tiny_models.build_tiny_qwen2_audio,
    "qwen2_5_omni": tiny_models.build_tiny_qwen2_5_omni_thinker,
    "audio_flamingo_3": tiny_models.build_tiny_audio_flamingo_3,
}
PROMPT = "What is the emotion of the speaker? Answer with one word."
TOKEN_BLOCK = " Acoustic cues: pitch high, loudness low, speech rate fast."


def make_requests(folder: Path, n: int, seed: int = 0) -> list[Request]:
    """``n`` requests on 16 kHz WAVs of 1-3 s, half of them with a token block."""
    rng = np.random.default_rng(seed)
    requests = []
    for i in range(n):
        seconds = rng.uniform(1.0, 3.0)
        t = np.arange(int(seconds * 16000)) / 16000
        signal = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 800) * t)
        signal += rng.normal(0.0, 0.02, t.size)
        path = folder / f"utt{i:03d}.wav"
        soundfile.write(path, (signal * 32767).astype(np.int16), 16000, subtype="PCM_16")
        prompt = PROMPT + (TOKEN_BLOCK * int(rng.integers(1, 4)) if i % 2 else "")
        requests.append(Request(f"utt{i:03d}", str(path), prompt, f"utt{i:03d}"))
    return requests


def make_condition_requests(folder: Path, n_utts: int, n_conditions: int) -> list[Request]:
    """``n_conditions`` prompts (token blocks of different lengths) on each of ``n_utts``
    files, utterance-major, as ``cueprobe infer`` sends the token conditions."""
    rng = np.random.default_rng(1)
    values = ["VERY_LOW", "LOW", "MID", "HIGH", "VERY_HIGH"]
    concepts = ["ENERGY", "PITCH", "DYNAMICS", "BRIGHTNESS", "FORMANTS"]
    requests = []
    for u, base in enumerate(make_requests(folder, n_utts, seed=2)):
        for _ in range(n_conditions):
            block = "; ".join(f"{k}={values[rng.integers(len(values))]}" for k in concepts)
            prompt = f"{PROMPT} Acoustic cues: {block}; VOICE_QUALITY=MODAL."
            requests.append(Request(f"utt{u:03d}", base.audio_path, prompt, f"utt{u:03d}"))
    return requests


def throughput(backend: TransformersBackend, requests: list[Request], repeats: int) -> float:
    """Best-of-``repeats`` requests per second (after one warm-up batch)."""
    backend.generate(requests[: backend.batch_size])
    rates = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        backend.generate(requests)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        rates.append(len(requests) / (time.perf_counter() - start))
    return max(rates)


def compare(
    label: str,
    names: tuple[str, str],
    rates: tuple[float, float],
    answers: tuple[list[str], list[str]],
) -> float:
    """Print two settings' throughputs, their ratio (second / first) and the share of
    equal answers; return the ratio."""
    agree = statistics.mean(a == b for a, b in zip(*answers, strict=True))
    ratio = rates[1] / rates[0]
    print(
        f"{label:>17}: {names[0]} {rates[0]:7.1f} req/s | {names[1]} {rates[1]:7.1f} req/s | "
        f"ratio {ratio:5.2f}x | answers equal {agree:.0%}"
    )
    return ratio


def measure(
    path: str,
    arch: str,
    args: argparse.Namespace,
    device: str,
    requests: list[Request],
    **options: object,
) -> tuple[float, list[str]]:
    """Throughput (:func:`throughput`) and answers of a backend built with ``options``."""
    backend = TransformersBackend(
        path,
        architecture=arch,
        dtype=args.dtype,
        max_new_tokens=args.max_new_tokens,
        device=device,
        **options,
    )
    return throughput(backend, requests, args.repeats), backend.generate(requests)


def bench_arch(arch: str, args: argparse.Namespace, device: str, tmp_path: Path) -> float:
    """Print and return the batch-``args.batch_size`` / batch-1 throughput ratio of ``arch``."""
    model_dir = args.model_dir or tmp_path / "models"
    path = BUILDERS[arch](
        model_dir / f"{arch}-{args.chunk_length}s", chunk_length=args.chunk_length
    )
    requests = make_requests(tmp_path / "wavs", args.n_requests)
    rates, answers = {}, {}
    for batch_size in (1, args.batch_size):
        rates[batch_size], answers[batch_size] = measure(
            path, arch, args, device, requests, batch_size=batch_size
        )
    return compare(
        arch,
        ("batch 1", f"batch {args.batch_size}"),
        (rates[1], rates[args.batch_size]),
        (answers[1], answers[args.batch_size]),
    )


def bench_sharing(arch: str, args: argparse.Namespace, device: str, tmp_path: Path) -> float:
    """Print and return the throughput ratio, prefix shared / not shared, on the token
    conditions of ``args.utterances`` utterances (``args.conditions`` each), batch 16."""
    model_dir = args.model_dir or tmp_path / "models"
    path = BUILDERS[arch](
        model_dir / f"{arch}-{args.chunk_length}s", chunk_length=args.chunk_length
    )
    requests = make_condition_requests(tmp_path / "wavs", args.utterances, args.conditions)
    rates, answers = {}, {}
    for share in (False, True):
        rates[share], answers[share] = measure(
            path, arch, args, device, requests, batch_size=args.batch_size, share_prefix=share
        )
    return compare(
        arch,
        ("not shared", "prefix shared"),
        (rates[False], rates[True]),
        (answers[False], answers[True]),
    )


def bench_window(args: argparse.Namespace, device: str, tmp_path: Path) -> float:
    """Print and return Qwen2.5-Omni's throughput ratio, features padded to the batch's
    longest clip (the backend) / to the published 300 s window (its processor's own),
    ``args.n_requests`` requests of 1-3 s, batch ``args.batch_size`` either way."""
    model_dir = args.model_dir or tmp_path / "models"
    path = tiny_models.build_tiny_qwen2_5_omni_thinker(
        model_dir / "qwen2_5_omni-300s", chunk_length=300
    )
    requests = make_requests(tmp_path / "wavs", args.n_requests)
    backend = TransformersBackend(
        path, architecture="qwen2_5_omni", dtype=args.dtype, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, device=device,
    )  # fmt: skip
    rates, answers = {}, {}
    for to_window in (True, False):
        backend._pads_to_window = not to_window  # private: the one switch this measures
        rates[to_window] = throughput(backend, requests, args.repeats)
        answers[to_window] = backend.generate(requests)
    return compare(
        "qwen2_5_omni",
        ("300 s window", "longest clip"),
        (rates[True], rates[False]),
        (answers[True], answers[False]),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", choices=sorted(BUILDERS), default=sorted(BUILDERS))
    parser.add_argument("--n-requests", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument(
        "--chunk-length",
        type=int,
        default=5,
        help="audio window of the tiny models in seconds (published: 30, Qwen2.5-Omni 300)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--conditions",
        type=int,
        default=16,
        help="token conditions per utterance for the prefix-sharing measure (0: skip it)",
    )
    parser.add_argument("--utterances", type=int, default=4)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--model-dir", type=Path, default=None, help="cache for tiny models")
    args = parser.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"device={device} threads={torch.get_num_threads()} n_requests={args.n_requests} "
        f"max_new_tokens={args.max_new_tokens} dtype={args.dtype} "
        f"chunk_length={args.chunk_length}s"
    )
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "wavs").mkdir()
        for arch in args.arch:
            ratios.append(bench_arch(arch, args, device, Path(tmp)))
        print(f"ratio: {statistics.geometric_mean(ratios):.2f}x geometric mean (goal >= 4x)")
        if args.conditions:
            print(
                f"prefix sharing: {args.utterances} utterances x {args.conditions} token "
                f"conditions, batch {args.batch_size} either way"
            )
            shared = [bench_sharing(arch, args, device, Path(tmp)) for arch in args.arch]
            print(f"ratio: {statistics.geometric_mean(shared):.2f}x geometric mean")
        if "qwen2_5_omni" in args.arch:
            print(
                f"audio features: Qwen2.5-Omni at its published 300 s window, batch {args.batch_size}"
            )
            bench_window(args, device, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
