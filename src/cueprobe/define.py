"""Closed vocabularies shared by every stage: concepts, token levels, eGeMAPS LLD names.

The LLD names are openSMILE's eGeMAPSv02 low-level descriptors, used verbatim as
column names from the feature tables onwards (Eyben et al. 2016, Table 1).
"""

from __future__ import annotations

import enum


class Concept(enum.StrEnum):
    """The six concept tokens of the paper's Table I, in serialisation order."""

    ENERGY = "ENERGY"
    PITCH = "PITCH"
    DYNAMICS = "DYNAMICS"
    BRIGHTNESS = "BRIGHTNESS"
    FORMANTS = "FORMANTS"
    VOICE_QUALITY = "VOICE_QUALITY"


#: the five scalar (ordinal, binned) concepts; VOICE_QUALITY is categorical
ORDINAL_CONCEPTS: tuple[Concept, ...] = (
    Concept.ENERGY,
    Concept.PITCH,
    Concept.DYNAMICS,
    Concept.BRIGHTNESS,
    Concept.FORMANTS,
)


class VoiceQuality(enum.StrEnum):
    """VOICE_QUALITY values, in the default order the rule tests them (MODAL last)."""

    UNVOICED = "UNVOICED"
    ROUGH = "ROUGH"
    BREATHY = "BREATHY"
    PRESSED = "PRESSED"
    CREAKY = "CREAKY"
    MODAL = "MODAL"


class InterventionKind(enum.StrEnum):
    """Token-only interventions; the audio is never changed."""

    AUDIO_ONLY = "audio_only"
    ALIGNED = "aligned"
    SHUFFLE = "shuffle"
    CONFLICT = "conflict"
    CORRUPT = "corrupt"


class FeatureStatus(enum.StrEnum):
    """What became of one file's extraction."""

    OK = "ok"
    TOO_SHORT = "too_short"  # under ``min_duration_s`` or MIN_FRAMES frames, or all-NaN
    SILENT = "silent"  # digital silence, dithered or not: no sample past 2 steps of 16 bit
    UNREADABLE = "unreadable"  # the audio could not be read or decoded
    # past full scale by more than 1 dB as analysed (mono, at the analysis rate), so clipped
    # to [-1, 1]: loudness and spectrum are distorted; the file gets tokens (flagged), no
    # say in the edges
    CLIPPED = "clipped"


class ParseStatus(enum.StrEnum):
    """How a model's free text became a label."""

    EXACT = "exact"
    SYNONYM = "synonym"
    MENTION = "mention"
    UNPARSED = "unparsed"
    ERROR = "error"


#: the low and high ends of each ordinal concept's scale; the middle word is MID
LEVEL_WORDS: dict[Concept, tuple[str, str]] = {
    Concept.ENERGY: ("LOW", "HIGH"),
    Concept.PITCH: ("LOW", "HIGH"),
    Concept.DYNAMICS: ("STATIC", "DYNAMIC"),
    Concept.BRIGHTNESS: ("DARK", "BRIGHT"),
    Concept.FORMANTS: ("LOW", "HIGH"),
}


#: the most bins with a word for each level (EXTREMELY_LOW ... EXTREMELY_HIGH)
MAX_BINS = 7


def level_names(concept: Concept | str, n_bins: int) -> list[str]:
    """Token values of an ordinal concept with ``n_bins`` bins, lowest first.

    Five bins give ``VERY_LOW, LOW, MID, HIGH, VERY_HIGH``; three give
    ``LOW, MID, HIGH``; seven add ``EXTREMELY_`` at both ends. An even count has
    no MID. Past seven the words run out (a model cannot tell an ``EXTREME2_LOW``
    from an ``EXTREMELY_LOW``): :data:`MAX_BINS`.

    Examples
    --------
    >>> level_names("BRIGHTNESS", 5)
    ['VERY_DARK', 'DARK', 'MID', 'BRIGHT', 'VERY_BRIGHT']
    >>> level_names("PITCH", 3)
    ['LOW', 'MID', 'HIGH']
    """
    if not isinstance(n_bins, int) or not 2 <= n_bins <= MAX_BINS:
        raise ValueError(f"`n_bins` must be an integer in [2, {MAX_BINS}], got {n_bins!r}.")
    low, high = LEVEL_WORDS[Concept(concept)]
    prefixes = ["", "VERY_", "EXTREMELY_"]
    half = n_bins // 2
    lows = [f"{prefixes[k]}{low}" for k in range(half)][::-1]
    highs = [f"{prefixes[k]}{high}" for k in range(half)]
    return lows + (["MID"] if n_bins % 2 else []) + highs


#: eGeMAPSv02 LLDs as openSMILE names them; the feature table has one mean per name
EGEMAPS_LLDS: tuple[str, ...] = (
    "Loudness_sma3",
    "alphaRatio_sma3",
    "hammarbergIndex_sma3",
    "slope0-500_sma3",
    "slope500-1500_sma3",
    "spectralFlux_sma3",
    "mfcc1_sma3",
    "mfcc2_sma3",
    "mfcc3_sma3",
    "mfcc4_sma3",
    "F0semitoneFrom27.5Hz_sma3nz",
    "jitterLocal_sma3nz",
    "shimmerLocaldB_sma3nz",
    "HNRdBACF_sma3nz",
    "logRelF0-H1-H2_sma3nz",
    "logRelF0-H1-A3_sma3nz",
    "F1frequency_sma3nz",
    "F1bandwidth_sma3nz",
    "F1amplitudeLogRelF0_sma3nz",
    "F2frequency_sma3nz",
    "F2bandwidth_sma3nz",
    "F2amplitudeLogRelF0_sma3nz",
    "F3frequency_sma3nz",
    "F3bandwidth_sma3nz",
    "F3amplitudeLogRelF0_sma3nz",
)
