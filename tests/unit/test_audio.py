"""One audio reader for every stage: mono, resampled, float."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from cueprobe.audio import load_audio
from cueprobe.audio import to_mono


def test_stereo_44k_is_mixed_and_resampled(tmp_path):
    t = np.arange(44100) / 44100
    left, right = 0.2 * np.sin(2 * np.pi * 200 * t), 0.4 * np.sin(2 * np.pi * 200 * t)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 44100, subtype="PCM_16")
    x = load_audio(str(tmp_path / "s.wav"), 16000)
    assert x.dtype == np.float32 and x.shape == (16000,)
    assert np.abs(x).max() == pytest.approx(0.3, abs=0.01)  # the mean of the channels


def test_shape_error():
    with pytest.raises(ValueError, match=r"`samples` must have shape \(n,\) or \(n, channels\)"):
        to_mono(np.zeros((2, 2, 2)), 16000, target_rate=16000)
