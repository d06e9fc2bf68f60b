"""Reading audio the same way in every stage: mono, at one rate, float.

Features, the reference model and the transformers backend all read audio
through here, so a stereo 44.1 kHz file is mixed and resampled identically.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import soundfile

log = logging.getLogger(__name__)


def to_mono(samples: np.ndarray, sampling_rate: int, *, target_rate: int) -> np.ndarray:
    """Average channels and resample (polyphase) to ``target_rate``; float64 out.

    Parameters
    ----------
    samples : numpy.ndarray of shape (n,) or (n, channels)
    sampling_rate : int
        Rate of ``samples`` in Hz.
    target_rate : int
        Rate of the result in Hz.

    Examples
    --------
    >>> to_mono(np.ones((4, 2)), 8000, target_rate=8000).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise ValueError(f"`samples` must have shape (n,) or (n, channels), got {x.shape}.")
    if sampling_rate != target_rate and x.size:
        from scipy.signal import resample_poly  # only for files at another rate

        g = math.gcd(int(sampling_rate), int(target_rate))
        x = resample_poly(x, target_rate // g, int(sampling_rate) // g)
    return x


def load_audio(path: str, sampling_rate: int, *, dtype: str = "float32") -> np.ndarray:
    """Read an audio file as a mono 1-D array at ``sampling_rate``."""
    samples, rate = soundfile.read(path, dtype="float64", always_2d=True)
    return np.ascontiguousarray(to_mono(samples, int(rate), target_rate=sampling_rate), dtype=dtype)


def read_or_none(path: str, read: Callable[[str], Any]) -> Any | None:
    """``read(path)``, or None with a warning naming the file when it is unreadable.

    Unreadable: ``read`` raises (a file that cannot be opened or decoded), or the samples
    (its result, or the first item of it) hold NaN or infinite values. The features
    stage records such a file ``unreadable``; the reference model gives it no embedding.
    """
    try:
        out = read(path)
    except Exception as err:  # any decoder error: this file's fault, never the job's
        log.warning("unreadable audio %s: %s", path, err)
        return None
    samples = out[0] if isinstance(out, tuple) else out
    bad = int(samples.size - np.isfinite(samples).sum())
    if bad:
        log.warning("unreadable audio %s: %d NaN or infinite sample(s)", path, bad)
        return None
    return out
