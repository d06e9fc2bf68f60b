"""Build the backend a model's config entry names; heavy modules are imported only when used.

``torch``/``transformers`` load only for ``transformers`` models, ``httpx`` only for
``openai`` models, so the reference model runs in an environment without either.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cueprobe.backends.base import Backend

__all__ = [
    "ANSWER_KEYS",
    "BACKENDS",
    "BACKEND_DEFAULTS",
    "answer_config",
    "load_setup",
    "make_backend",
    "with_backend_defaults",
]

BACKENDS = ("reference", "transformers", "openai")

#: per backend, the model config keys that change answers: the workflow passes them as
#: params (rerun triggers). Throughput and client knobs (batch_size, base_url,
#: concurrency, retries, timeout) are not among them, so moving a vLLM server to another
#: node, or a smaller batch for a smaller GPU, re-runs nothing (the answer journal is
#: keyed by what the model read and its decoding, not by the batch it was asked in).
#: ``answer_pattern`` changes what is parsed, not what the model says: the journal's answers
#: are parsed again.
ANSWER_KEYS: dict[str, tuple[str, ...]] = {
    "reference": ("backend", "answer_pattern"),
    "transformers": (
        "backend",
        "model_id",
        "revision",
        "architecture",
        "dtype",
        "max_new_tokens",
        "trust_remote_code",
        "adapter",
        "adapter_subfolder",
        "adapter_revision",
        "answer_pattern",
    ),
    # seed: the request field, a model setting (default 0), not the root seed, so a new
    # root seed (new shuffles and corruptions) re-asks no audio-only prompt
    "openai": ("backend", "model_id", "revision", "max_new_tokens", "seed", "answer_pattern"),
}


#: per backend, what a model config that leaves ``batch_size`` or a ``resources`` entry
#: null (or out) gets: the reference classifier answers 64 prompts at a time on the CPU,
#: an ALM 8 per generate call on its own GPU; an openai server holds its GPUs itself, so
#: its client is small. A 7B ALM in bf16 is ~16 GB to load (host memory), and the token
#: conditions of IEMOCAP are ~150k prompts: hours, not the minutes a CPU model takes
BACKEND_DEFAULTS: dict[str, dict[str, int]] = {
    "reference": {"batch_size": 64, "gpu": 0, "mem_mb": 4000, "runtime": 60, "threads": 1},
    "transformers": {"batch_size": 8, "gpu": 1, "mem_mb": 40000, "runtime": 240, "threads": 4},
    "openai": {"batch_size": 8, "gpu": 0, "mem_mb": 4000, "runtime": 240, "threads": 1},
}


def with_backend_defaults(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The model config with its backend's batch size, GPUs, memory, runtime, threads where null.

    Examples
    --------
    >>> cfg = with_backend_defaults({"backend": "transformers", "batch_size": None})
    >>> cfg["batch_size"], cfg["resources"]
    (8, {'gpu': 1, 'mem_mb': 40000, 'runtime': 240, 'threads': 4})
    >>> cfg = with_backend_defaults({"backend": "reference", "batch_size": 2,
    ...                              "resources": {"mem_mb": 3000}})
    >>> cfg["batch_size"], cfg["resources"]
    (2, {'mem_mb': 3000, 'gpu': 0, 'runtime': 60, 'threads': 1})
    """
    defaults = BACKEND_DEFAULTS[model_cfg["backend"]]
    resources = dict(model_cfg.get("resources") or {})
    for key in ("gpu", "mem_mb", "runtime", "threads"):
        if resources.get(key) is None:
            resources[key] = defaults[key]
    batch_size = model_cfg.get("batch_size")
    return dict(model_cfg) | {
        "batch_size": defaults["batch_size"] if batch_size is None else batch_size,
        "resources": resources,
    }


def answer_config(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a model's config entry that can change its answers.

    Examples
    --------
    >>> answer_config({"backend": "openai", "model_id": "m", "concurrency": 8})
    {'backend': 'openai', 'model_id': 'm'}
    >>> answer_config({"backend": "reference", "answer_pattern": None})
    {'backend': 'reference'}
    """
    backend = model_cfg.get("backend")
    if backend not in ANSWER_KEYS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {list(BACKENDS)}.")
    out = {k: model_cfg[k] for k in ANSWER_KEYS[backend] if k in model_cfg}
    if out.get("answer_pattern", "") is None:  # the default: results from before it exist
        del out["answer_pattern"]  # keep their params, so they do not re-run
    return out


def load_setup(model_cfg: Mapping[str, Any], *, device: str | None = None) -> dict | None:
    """What the model of a ``transformers`` config entry would be loaded from (see
    :func:`cueprobe.backends.hf.load_setup`), without loading it; None for the other
    backends, which load in no time."""
    if model_cfg.get("backend") != "transformers":
        return None
    from cueprobe.backends import hf

    return hf.load_setup(**_transformers_args(model_cfg), device=device)


def _transformers_args(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``TransformersBackend`` arguments that identify the model and its decoding."""
    _require(model_cfg, ("model_id", "architecture"))
    return {
        "model_id": model_cfg["model_id"],
        "architecture": model_cfg["architecture"],
        "revision": model_cfg.get("revision", "main"),
        "dtype": model_cfg.get("dtype", "auto"),
        "max_new_tokens": model_cfg.get("max_new_tokens", 16),
        "trust_remote_code": model_cfg.get("trust_remote_code", False),
        "adapter": model_cfg.get("adapter"),
        "adapter_subfolder": model_cfg.get("adapter_subfolder"),
        "adapter_revision": model_cfg.get("adapter_revision"),
    }


def _require(model_cfg: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if not model_cfg.get(k)]
    if missing:
        raise ValueError(
            f"the {model_cfg['backend']!r} backend needs {missing} in the model's config entry."
        )


def make_backend(
    model_cfg: Mapping[str, Any],
    *,
    system_prompt: str | None = None,
    reference_files: Sequence[str | Path] = (),
    api_key: str | None = None,
    device: str | None = None,
) -> Backend:
    """The backend of one model config entry (``config.models.<name>``, schema-filled).

    Parameters
    ----------
    model_cfg : mapping
        ``backend`` plus that backend's keys (``model_id``, ``revision``, ``architecture``,
        ``dtype``, ``batch_size``, ``max_new_tokens``, ``trust_remote_code``, ``adapter``,
        ``base_url``, ``concurrency``, ``max_retries``, ``timeout_s``, ``seed``: the
        ``openai`` request's decoding seed, 0 if absent).
    system_prompt : str or None
        Config ``prompts.system``.
    reference_files : sequence of path
        Trained reference classifiers (``reference`` backend): its ``audio`` and/or
        ``tokens`` classifier.
    api_key : str or None
        ``openai`` backend bearer token, read by the caller from the environment.
    device : str or None
        Torch device (``transformers``); None picks CUDA when available.

    Raises
    ------
    ValueError
        On an unknown backend or a missing required key.
    """
    backend = model_cfg.get("backend")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {list(BACKENDS)}.")
    model_cfg = with_backend_defaults(model_cfg)
    if backend == "reference":
        from cueprobe.backends.reference import ReferenceBackend

        if not reference_files:
            raise ValueError("the 'reference' backend needs its trained classifier file(s).")
        return ReferenceBackend.from_files(reference_files, batch_size=model_cfg["batch_size"])
    if backend == "transformers":
        from cueprobe.backends.hf import TransformersBackend

        return TransformersBackend(
            **_transformers_args(model_cfg),
            batch_size=model_cfg["batch_size"],
            system_prompt=system_prompt,
            device=device,
        )
    _require(model_cfg, ("model_id", "base_url"))
    from cueprobe.backends.openai_compat import OpenAIBackend

    return OpenAIBackend(
        model_cfg["base_url"],
        model_cfg["model_id"],
        api_key=api_key,
        revision=model_cfg.get("revision", "main"),
        max_new_tokens=model_cfg.get("max_new_tokens", 16),
        batch_size=max(model_cfg["batch_size"], model_cfg.get("concurrency", 8)),
        concurrency=model_cfg.get("concurrency", 8),
        max_retries=model_cfg.get("max_retries", 5),
        timeout_s=model_cfg.get("timeout_s", 120.0),
        system_prompt=system_prompt,
        seed=model_cfg.get("seed", 0),
    )
