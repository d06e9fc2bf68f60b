"""eGeMAPSv02 low-level descriptors per file, summarised as voicing-correct means.

openSMILE (``opensmile`` package, ``FeatureSet.eGeMAPSv02``,
``FeatureLevel.LowLevelDescriptors``) gives 25 LLDs every 10 ms. A plain mean over
frames is wrong for the voiced-only descriptors, because openSMILE writes 0.0 in
unvoiced frames (Eyben et al. 2016, Sec. 3.1: F0, jitter, shimmer, HNR and the
harmonic/formant descriptors are "computed on voiced regions only"). So:

* ``Loudness``, spectral flux, MFCC 1-4: mean over all frames of the LLD stream (the
  trailing flush frames of the F0 tracker included: on this 25 ms stream they are real
  frames, and eGeMAPS' ``loudness_sma3_amean`` even counts 3 frames past the LLD
  output's end; dropping them cut the last 60 ms of every file, 1.4 % off that
  functional in the median demo file, 4.4 % at most, against 0.9 % and 2.0 %);
* F0 (semitones), jitter, shimmer, HNR, H1-H2, H1-A3: mean of the non-zero frames, as
  eGeMAPS' own ``*_amean`` functionals (``nonZeroFuncts = 1``), less openSMILE's floor
  (-201, a log of nothing): H1-A3 takes it in voiced frames whose 25 ms window is still
  digital silence at a voice onset, and two such frames moved a file's mean by 6 dB
  (eGeMAPS' amean counts them);
* the formant amplitudes (``F1-F3amplitudeLogRelF0``): mean over the frames with F0 > 0
  where openSMILE measured one: it writes 0.0 in some voiced frames (no measurement) and
  its floor, -201, in unvoiced frames (not 0.0), so eGeMAPS' own ``*_amean`` (non-zero
  frames) counts the floor: measured on a 2 s voice with half its frames unvoiced, F1
  -103.1 there against -3.8 over its voiced frames (with voiced ratios near 0.5, as in
  IEMOCAP, the column was mostly a copy of the voiced ratio). On the almost fully
  voiced demo files both equal ``F*amplitudeLogRelF0_sma3nz_amean`` to 1e-3;
* formant frequencies and bandwidths F1-F3 and spectral balance (alpha ratio,
  Hammarberg index, slopes 0-500 and 500-1500 Hz): frames with F0 > 0 that hold a
  value (not 0.0), as eGeMAPS' voiced ``*V_sma3nz_amean`` functionals and the formants'
  ``*_sma3nz_amean`` (both ``nonZeroFuncts = 1``). openSMILE's F0 window (60 ms) reaches
  a voice before its 25 ms spectral window does, so a voice after digital silence has
  voiced frames with F1 = 0 Hz and alpha ratio 0.0: averaged in, they put F1 25 Hz and
  F2 70 Hz below eGeMAPS' functionals, and the Hammarberg index 1.5 dB.

Files without a voiced frame get NaN for the voiced-only columns and
``voiced_ratio`` 0. Every file gets a :class:`FeatureStatus`; none is dropped.

Files are assigned to extraction shards by a stable hash of their ``utt_id``
(:func:`shard_of`), so a corpus of 28k files is a few hundred jobs.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from cueprobe.audio import read_or_none
from cueprobe.audio import to_mono
from cueprobe.define import EGEMAPS_LLDS
from cueprobe.define import FeatureStatus

log = logging.getLogger(__name__)

F0_LLD = "F0semitoneFrom27.5Hz_sma3nz"

#: averaged over every frame
ALL_FRAME_LLDS: tuple[str, ...] = (
    "Loudness_sma3",
    "spectralFlux_sma3",
    "mfcc1_sma3",
    "mfcc2_sma3",
    "mfcc3_sma3",
    "mfcc4_sma3",
)
#: averaged over their own non-zero frames (openSMILE writes 0.0 when unvoiced)
NONZERO_LLDS: tuple[str, ...] = (
    F0_LLD,
    "jitterLocal_sma3nz",
    "shimmerLocaldB_sma3nz",
    "HNRdBACF_sma3nz",
    "logRelF0-H1-H2_sma3nz",
    "logRelF0-H1-A3_sma3nz",
)
#: averaged over the frames with F0 > 0 that hold a measurement: not 0.0 (none in a
#: voiced frame) and above openSMILE's floor (-201, written in unvoiced frames)
AMPLITUDE_LLDS: tuple[str, ...] = (
    "F1amplitudeLogRelF0_sma3nz",
    "F2amplitudeLogRelF0_sma3nz",
    "F3amplitudeLogRelF0_sma3nz",
)
#: openSMILE's value for a formant amplitude it cannot measure in an unvoiced frame
AMPLITUDE_FLOOR = -201.0
#: averaged over the frames with F0 > 0 that hold a value (not 0.0)
VOICED_LLDS: tuple[str, ...] = tuple(
    c for c in EGEMAPS_LLDS if c not in (*ALL_FRAME_LLDS, *NONZERO_LLDS, *AMPLITUDE_LLDS)
)

#: openSMILE's LLD stream carries F0-tracked frames flushed at end of input (pitch
#: tracker and 3-frame smoother look-ahead) that its own eGeMAPSv02 functionals never
#: see. Measured with opensmile 2.6.0 on demo files: without these 3 frames the
#: non-zero means equal ``*_amean`` to ~1e-8 in 38 of 39 files (one frame off in
#: the last); with them jitter means are up to 7 % off. See tests/unit/test_features.py.
#: Only the F0-tracked and voiced means drop them: the all-frame LLDs (loudness, flux,
#: MFCCs) come from the 25 ms stream, where these are real frames.
TRAILING_FLUSH_FRAMES = 3

#: fewer analysis frames than this (10 ms apart, after the flush frames: clips under
#: ~0.17 s) is ``too_short`` whatever ``min_duration_s`` says: openSMILE answers from 60 ms
#: on, but its F0 of a 70 ms clip of a 200 Hz voice was 61 Hz (one frame), jitter and
#: shimmer need consecutive periods
MIN_FRAMES = 10

#: the rate every file is analysed at, so that corpora mixing rates stay comparable
ANALYSIS_RATE = 16000

#: openSMILE converts float samples with ``int16(x * 32768)``: +1.0 wraps to -32768
_INT16_MAX = 32767 / 32768

#: a signal whose every sample is within this many 16-bit steps of 0 as openSMILE gets
#: it is ``silent``: digital silence, or dithered digital silence (TPDF dither, which sox
#: adds by default when it cuts the bit depth, is +-1 step; rounding adds one). openSMILE
#: finds no voice there (a voice peaking at 128 steps, -48 dBFS, had no voiced frame),
#: but such a file was ``ok``: in the token edges, and not named at the end of the run,
#: while the same file of exact zeros was ``silent``.
SILENT_PEAK_LSB = 2

#: a signal past full scale by more than this (1 dB) is ``clipped``. Resampling a file
#: that peaks at full scale overshoots a little (band-limiting changes its peaks): of
#: 80 synthetic 44.1/48 kHz voices peak-normalised to 32767, 42 % went past 1.0 at 16 kHz,
#: by 2.3 % at most; they were all ``clipped`` (out of the token edges, flagged, and
#: warned about as float files in int16 scale) for a clip that removes nothing
#: audible. A float file in int16 scale, one at twice full scale, or a full-scale
#: square wave whose Gibbs ripples go 16 % past it, stay ``clipped``.
CLIP_TOLERANCE = 10 ** (1 / 20)


#: statuses of a file that was analysed: it gets tokens from its features (``clipped``
#: ones flagged, and left out of the token edges' fit); the others have none
ANALYSED: tuple[str, ...] = (FeatureStatus.OK.value, FeatureStatus.CLIPPED.value)

FEATURE_COLUMNS: tuple[str, ...] = ("utt_id", *EGEMAPS_LLDS, "n_frames", "voiced_ratio", "status")


def status_note(corpus: str, statuses: pd.Series, path: str | Path) -> str | None:
    """The line that ends a run: how many files were not analysed as they sound (None: none).

    Examples
    --------
    >>> statuses = pd.Series(["ok", "too_short", "clipped", "ok"])
    >>> status_note("c", statuses, "results/c/features.parquet")
    'c: 2 of 4 audio file(s) not analysed as they sound (clipped 1, too_short 1): their tokens are filled in or flagged (`flag` in tokens.parquet); the statuses are in results/c/features.parquet'
    >>> status_note("c", statuses.iloc[[0]], "x") is None
    True
    """
    bad = statuses[statuses != FeatureStatus.OK]
    if bad.empty:
        return None
    counts = ", ".join(f"{s} {n}" for s, n in sorted(bad.value_counts().items()))
    return (
        f"{corpus}: {len(bad)} of {len(statuses)} audio file(s) not analysed as they sound "
        f"({counts}): their tokens are filled in or flagged (`flag` in tokens.parquet); the "
        f"statuses are in {path}"
    )


def shard_of(utt_id: str, n_shards: int) -> int:
    """Extraction shard of an utterance: a stable hash of ``utt_id`` modulo ``n_shards``.

    Uses BLAKE2b, not :func:`hash` (salted per process), so every job agrees.

    Examples
    --------
    >>> shard_of("Ses01F_impro01_F000", 1)
    0
    """
    if not isinstance(n_shards, int) or n_shards < 1:
        raise ValueError(f"`n_shards` must be an integer >= 1, got {n_shards!r}.")
    digest = hashlib.blake2b(utt_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def select_shard(manifest: pd.DataFrame, *, shard: int, n_shards: int) -> pd.DataFrame:
    """The manifest rows that belong to extraction shard ``shard`` of ``n_shards``."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"`shard` must be in [0, {n_shards}), got {shard}.")
    if "utt_id" not in manifest.columns:
        raise ValueError(f"manifest lacks column 'utt_id'; it has {list(manifest.columns)}.")
    keep = np.array([shard_of(u, n_shards) == shard for u in manifest["utt_id"]], dtype=bool)
    return manifest.loc[keep].reset_index(drop=True)


def prepare_signal(
    samples: np.ndarray, sampling_rate: int, *, target_rate: int = ANALYSIS_RATE
) -> tuple[np.ndarray, bool]:
    """Mono float32 samples at ``target_rate`` inside [-1, 32767/32768], and whether the
    signal went past full scale by more than :data:`CLIP_TOLERANCE` (then the clip
    distorts it).

    Channels (``samples`` of shape ``(n,)`` or ``(n, channels)``) are averaged,
    other rates are resampled (polyphase), and samples are clipped so that
    openSMILE's int16 conversion cannot wrap +1.0 around to -1.0. Full scale is judged
    on the signal as analysed, not on the file: a loud channel of a stereo file may be
    halved by the mix, a resampled loud file may overshoot.
    """
    mono = to_mono(samples, int(sampling_rate), target_rate=target_rate)
    past = bool(mono.size) and float(np.max(np.abs(mono))) > CLIP_TOLERANCE
    return np.clip(mono, -1.0, _INT16_MAX).astype(np.float32), past


def summarise_llds(lld: pd.DataFrame, *, drop_trailing: int = TRAILING_FLUSH_FRAMES) -> dict:
    """File-level voicing-correct means of one file's eGeMAPS LLD frames.

    Parameters
    ----------
    lld : DataFrame of shape (n_frames, 25)
        openSMILE's eGeMAPSv02 LLDs of one file, columns named as
        :data:`cueprobe.define.EGEMAPS_LLDS`.
    drop_trailing : int, default: TRAILING_FLUSH_FRAMES
        F0-tracked frames flushed at end of input that openSMILE's functionals ignore
        (left out of every mean but the all-frame ones); at least one frame is always
        kept.

    Returns
    -------
    dict
        The 25 means, ``n_frames`` (F0-tracked frames averaged) and ``voiced_ratio``
        (share of those frames with F0 > 0).
    """
    missing = [c for c in EGEMAPS_LLDS if c not in lld.columns]
    if missing:
        raise ValueError(f"LLD frame table lacks column(s) {missing[:5]}.")
    return _summarise(lld[list(EGEMAPS_LLDS)].to_numpy(dtype=np.float64), drop_trailing)


def _summarise(values: np.ndarray, drop_trailing: int) -> dict:
    """:func:`summarise_llds` on an array of shape (n_frames, 25) in EGEMAPS_LLDS order."""
    n = len(values) - drop_trailing if len(values) > drop_trailing else min(len(values), 1)
    every = values
    values = values[:n]
    out: dict[str, Any] = {}
    if n == 0 or np.isnan(values).all():
        return {c: math.nan for c in EGEMAPS_LLDS} | {"n_frames": 0, "voiced_ratio": 0.0}
    col = {c: values[:, i] for i, c in enumerate(EGEMAPS_LLDS)}
    voiced = col[F0_LLD] > 0

    def mean(x: np.ndarray) -> float:
        return float(x.mean()) if x.size else math.nan

    for c in ALL_FRAME_LLDS:  # the 25 ms stream: its last frames are real ones
        out[c] = float(np.mean(every[:, EGEMAPS_LLDS.index(c)]))
    for c in NONZERO_LLDS:  # 0.0: unvoiced or not measured; the floor: a log of nothing
        out[c] = mean(col[c][(col[c] != 0) & (col[c] > AMPLITUDE_FLOOR + 1)])
    for c in VOICED_LLDS:  # 0.0 in a voiced frame: nothing measured (digital silence)
        out[c] = mean(col[c][voiced & (col[c] != 0)])
    for c in AMPLITUDE_LLDS:
        out[c] = mean(col[c][voiced & (col[c] != 0) & (col[c] > AMPLITUDE_FLOOR + 1)])
    out = {c: out[c] for c in EGEMAPS_LLDS}
    out["n_frames"] = int(n)
    out["voiced_ratio"] = float(voiced.mean())
    return out


def extract_signal(
    samples: np.ndarray,
    sampling_rate: int,
    *,
    smile: Any,
    min_duration_s: float,
) -> dict:
    """Status and voicing-correct LLD means of one signal (see :func:`prepare_signal`).

    ``smile`` is an ``opensmile.Smile`` for eGeMAPSv02 LLDs (built once per job).
    """
    x, clipped = prepare_signal(samples, sampling_rate)
    nan_row = {c: math.nan for c in EGEMAPS_LLDS} | {"n_frames": 0, "voiced_ratio": 0.0}
    # less a hair: 4.03 s * 16000 is 64480.00000000001, so a clip of exactly 4.03 s
    # was too short for min_duration_s=4.03
    if x.size < min_duration_s * ANALYSIS_RATE - 1e-6 or x.size == 0:
        return nan_row | {"status": FeatureStatus.TOO_SHORT.value}
    frames = smile(x, ANALYSIS_RATE)[0].T  # (n_frames, 25), columns as smile.feature_names
    row = _summarise(frames.astype(np.float64, copy=False), TRAILING_FLUSH_FRAMES)
    if row["n_frames"] < MIN_FRAMES:
        return nan_row | {"n_frames": row["n_frames"], "status": FeatureStatus.TOO_SHORT.value}
    # the 16-bit steps openSMILE gets (it truncates x * 32768); x is inside [-1, 1)
    peak_lsb = int(np.max(np.abs((x * np.float32(32768)).astype(np.int32))))
    silent = peak_lsb <= SILENT_PEAK_LSB
    status = FeatureStatus.SILENT if silent else FeatureStatus.OK
    return row | {"status": (FeatureStatus.CLIPPED if clipped else status).value}


def _read_audio(path: str) -> tuple[np.ndarray, int]:
    samples, sampling_rate = sf.read(path, dtype="float32", always_2d=True)
    return samples, int(sampling_rate)


def extract_features(
    manifest: pd.DataFrame,
    *,
    min_duration_s: float,
    n_workers: int = 1,
    read: Callable[[str], tuple[np.ndarray, int]] = _read_audio,
    progress_every: int = 0,
) -> pd.DataFrame:
    """eGeMAPSv02 LLD means of every manifest row, in manifest order.

    Parameters
    ----------
    manifest : DataFrame
        At least ``utt_id`` and ``path`` (audio file).
    min_duration_s : float
        Shorter clips get status ``too_short`` and NaN features (openSMILE
        returns all-NaN below about 60 ms).
    n_workers : int, default: 1
        Files processed in parallel (threads: openSMILE releases the GIL).
    read : callable, default: soundfile reader
        ``path -> (samples of shape (n, channels), sampling_rate)``; raising
        marks the file ``unreadable``.
    progress_every : int, default: 0
        Log progress every this many files (0: 20 messages per call).

    Returns
    -------
    DataFrame
        :data:`FEATURE_COLUMNS`, one row per manifest row; no row is dropped.
    """
    import opensmile

    missing = [c for c in ("utt_id", "path") if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks column(s) {missing}; it has {list(manifest.columns)}.")
    if n_workers < 1:
        raise ValueError(f"`n_workers` must be >= 1, got {n_workers}.")
    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
    )

    def one(path: str) -> dict:
        nan_row = {c: math.nan for c in EGEMAPS_LLDS}
        unreadable = nan_row | {"n_frames": 0, "voiced_ratio": math.nan, "status": "unreadable"}
        # NaN samples too: openSMILE's int16 cast would make them 0 and call the file fine
        read_out = read_or_none(path, read)
        if read_out is None:
            return unreadable
        samples, sampling_rate = read_out
        row = extract_signal(samples, sampling_rate, smile=smile, min_duration_s=min_duration_s)
        if row["status"] == FeatureStatus.CLIPPED:
            log.warning(
                "audio %s goes past full scale as analysed (mono, %d Hz; file peak %.3g: a "
                "float file in int16 scale?), by more than 1 dB: clipped to [-1, 1], so its "
                "loudness and spectrum are distorted (status clipped)",
                path,
                ANALYSIS_RATE,
                float(np.max(np.abs(samples))),
            )
        return row

    paths = manifest["path"].astype(str).tolist()
    every = progress_every or max(1, len(paths) // 20)
    start = time.perf_counter()
    rows = []
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        results = pool.map(one, paths) if n_workers > 1 else map(one, paths)
        for k, row in enumerate(results, start=1):
            rows.append(row)
            if k % every == 0 or k == len(paths):
                rate = k / max(time.perf_counter() - start, 1e-9)
                log.info("extracted %d/%d files (%.1f files/s)", k, len(paths), rate)
    table = pd.DataFrame(rows, columns=list(FEATURE_COLUMNS[1:]))
    table.insert(0, "utt_id", manifest["utt_id"].astype(str).to_numpy())
    table["n_frames"] = table["n_frames"].astype("int64")
    table["voiced_ratio"] = table["voiced_ratio"].astype("float64")
    table[list(EGEMAPS_LLDS)] = table[list(EGEMAPS_LLDS)].astype("float64")
    return table
