"""A small source-filter speech synthesiser for the demo corpora (numpy + scipy only).

Source: a glottal pulse train (Rosenberg pulses) following an F0 contour with
declination and syllable-rate intonation, per-period jitter (F0 perturbation)
and shimmer (amplitude perturbation), plus pulse-synchronous aspiration noise.
Filter: first-order spectral tilt, then a cascade of formant resonators whose
frequencies scale with the speaker's vocal-tract length. A syllable-rate
amplitude envelope with short pauses makes it speech-like for openSMILE's
voicing and loudness descriptors. Parameters are physical (Hz, dB, %), so tests
can check that the concept tokens recover them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import signal

SAMPLE_RATE = 16000


@dataclasses.dataclass(frozen=True)
class VoiceParams:
    """Generating parameters of one utterance (all physical units)."""

    f0_hz: float  # mean F0
    f0_range_st: float  # intonation excursion, semitones
    level_db: float  # RMS level, dBFS
    tilt: float  # spectral tilt, -1 (dark) .. +1 (bright)
    jitter: float  # relative period perturbation (0.01 = 1 %)
    shimmer: float  # relative amplitude perturbation
    breathiness: float  # aspiration-noise to pulse ratio (0..1)
    rate_hz: float  # syllables per second
    formant_scale: float  # vocal-tract scaling of F1-F4
    duration_s: float


_BASE_FORMANTS = np.array([600.0, 1300.0, 2500.0, 3500.0])
_BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0])


def synthesize(params: VoiceParams, *, rng: np.random.Generator) -> np.ndarray:
    """Render one utterance as float32 samples in (-1, 1) at :data:`SAMPLE_RATE`."""
    sr = SAMPLE_RATE
    n = int(round(params.duration_s * sr))
    t = np.arange(n) / sr
    # F0 contour: declination + syllable-rate intonation + slow random drift
    phase0 = rng.uniform(0, 2 * np.pi)
    contour_st = (
        params.f0_range_st * 0.5 * np.sin(2 * np.pi * params.rate_hz * 0.5 * t + phase0)
        - 1.5 * t / max(params.duration_s, 1e-3)
        + 0.4 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 2 * np.pi))
    )
    f0 = params.f0_hz * 2.0 ** (contour_st / 12.0)

    # glottal pulses, one period at a time (jitter and shimmer are per period)
    source = np.zeros(n)
    pos = 0.0
    while pos < n - 1:
        i = int(pos)
        period = sr / f0[i] * (1.0 + params.jitter * rng.standard_normal())
        period = max(period, sr / 600.0)
        amp = 1.0 + params.shimmer * rng.standard_normal()
        length = int(period)
        tp = np.arange(length) / length
        opening = 0.4
        pulse = np.where(
            tp < opening,
            0.5 * (1 - np.cos(np.pi * tp / opening)),
            np.cos(0.5 * np.pi * (tp - opening) / (1 - opening)) ** 2,
        )
        end = min(i + length, n)
        source[i:end] += amp * pulse[: end - i]
        pos += period
    source = np.diff(source, prepend=0.0)  # radiated glottal flow derivative
    source /= np.max(np.abs(source)) + 1e-12

    noise = rng.standard_normal(n) * (0.5 + 0.5 * np.abs(source) / (np.abs(source).max() + 1e-12))
    excitation = (1 - params.breathiness) * source + params.breathiness * 0.35 * noise

    # spectral tilt: two one-pole low-passes for dark (<0), two first differences for
    # bright (>0): up to about -+12 dB/octave on top of the glottal source
    coef = min(0.95, abs(params.tilt) * 0.95)
    for _ in range(2):
        if params.tilt < 0:
            excitation = signal.lfilter([1 - coef], [1, -coef], excitation)
        else:
            excitation = signal.lfilter([1, -coef], [1], excitation)

    # formant cascade
    out = excitation
    formants = _BASE_FORMANTS * params.formant_scale * (1 + 0.05 * rng.standard_normal(4))
    for fc, bw in zip(formants, _BANDWIDTHS, strict=True):
        fc = min(fc, 0.45 * sr)
        r = np.exp(-np.pi * bw / sr)
        theta = 2 * np.pi * fc / sr
        a_coef = [1.0, -2 * r * np.cos(theta), r * r]
        out = signal.lfilter([sum(a_coef)], a_coef, out)

    # syllable envelope with pauses; 20 ms fade in/out
    env = np.clip(np.sin(np.pi * params.rate_hz * t + rng.uniform(0, np.pi)) ** 2 * 1.3, 0.0, 1.0)
    env = np.maximum(env, 0.05)
    fade = min(int(0.02 * sr), n // 2)
    ramp = np.linspace(0, 1, fade)
    env[:fade] *= ramp
    env[n - fade :] *= ramp[::-1]
    out = out * env
    out += 1e-4 * rng.standard_normal(n)  # recording noise floor

    # the level is set on a pre-emphasised copy, a crude stand-in for the ear's
    # weighting: openSMILE's loudness then follows the generated level (Spearman
    # ~0.95 over random tilts and F0s) instead of the spectral tilt (0.74 with plain RMS)
    weighted = signal.lfilter([1, -0.9], [1], out)
    rms = np.sqrt(np.mean(weighted**2)) + 1e-12
    out = out * (10 ** (params.level_db / 20.0) / rms)
    peak = np.max(np.abs(out))
    if peak > 0.98:  # never clip or wrap: openSMILE wraps at exactly +-1.0
        out *= 0.98 / peak
    return out.astype(np.float32)
