"""Shared fixtures and the deterministic hypothesis profile (selected in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, database=None, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def write_wav():
    """Write a short mono 16-bit WAV (a 150 Hz tone) and return its path."""

    def _write(path: Path, duration_s: float = 0.5, sr: int = 16000, freq: float = 150.0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(duration_s * sr)) / sr
        sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), sr, subtype="PCM_16")
        return path

    return _write


def cannot_run(reason: str) -> None:
    """Skip with ``reason``, or fail under CI (CI=true), where a test must not go missing."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, but this test cannot run: {reason}")
    pytest.skip(reason)
