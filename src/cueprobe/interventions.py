"""Token-only interventions: the audio is never changed, only the token block.

Conditions (DESIGN.md, the paper's Section III):

``audio_only``
    no token block at all;
``aligned``
    the utterance's own tokens;
``shuffle_s{seed}``
    a permutation of whole token sequences within each group (the evaluated
    split), so the marginal distribution is kept and the alignment is broken,
    except where the permutation leaves an utterance its own block: its fixed
    points (certain in a one-utterance group) and utterances whose token
    sequence equals the one they receive stay aligned (``cueprobe condition``
    logs how many, see :func:`kept_aligned`);
``conflict``
    ordinal bins inverted (bin i -> n-1-i, MID stays), VOICE_QUALITY through a
    configurable opposite map;
``corrupt_p{pct}_s{seed}``
    each position, with probability p, replaced by a uniform draw from that
    concept's vocabulary (which may equal the original).

Every condition is a deterministic function of (tokens, seed). Corruption uses
common random numbers across p: for one seed, position (i, j) is corrupted at
level p iff u_ij < p with the same u_ij and the same replacement for every p,
so the corrupted sets are nested in p and ``corrupt_p0`` equals ``aligned``.

The caller seeds each stream from (root seed, stage, kind, condition seed): not from p
(hence the nesting) and not from the corpus, so two corpora with the same split sizes
get the same permutations, and two of one size the same corruption draws. That is
harmless, since every analysis is within one corpus.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cueprobe.define import ORDINAL_CONCEPTS
from cueprobe.define import Concept
from cueprobe.define import level_names
from cueprobe.tokens import serialise_tokens
from cueprobe.tokens import voice_quality_values

CONCEPT_COLUMNS: tuple[str, ...] = tuple(c.value for c in Concept)


@dataclasses.dataclass(frozen=True)
class ConditionSpec:
    """The grid of conditions to build (from config ``interventions``)."""

    shuffle_seeds: tuple[int, ...]
    corrupt_p: tuple[float, ...]
    corrupt_seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        """A condition's p is read back from its name (whole percent): refuse the rest.

        Examples
        --------
        >>> ConditionSpec((0,), (0.004,), (0,))
        Traceback (most recent call last):
        ...
        ValueError: interventions.corrupt_p: 0.004 is not a whole percent (condition names, \
and so the p that is applied, carry round(100 p)); use 0.0 or 0.01.
        """
        for p in self.corrupt_p:
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"interventions.corrupt_p: {p!r} is outside [0, 1].")
            if abs(100 * p - round(100 * p)) > 1e-9:
                raise ValueError(
                    f"interventions.corrupt_p: {p!r} is not a whole percent (condition names, "
                    f"and so the p that is applied, carry round(100 p)); use "
                    f"{math.floor(100 * p) / 100} or {math.ceil(100 * p) / 100}."
                )
        for key in ("shuffle_seeds", "corrupt_p", "corrupt_seeds"):
            values = [round(100 * v) if key == "corrupt_p" else v for v in getattr(self, key)]
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                shown = [v / 100 for v in repeated] if key == "corrupt_p" else repeated
                raise ValueError(f"interventions.{key}: {shown} given more than once.")

    def names(self) -> list[str]:
        """All condition names, in report order.

        Examples
        --------
        >>> ConditionSpec((0,), (0.0, 0.5), (1,)).names()
        ['audio_only', 'aligned', 'shuffle_s0', 'conflict', 'corrupt_p0_s1', 'corrupt_p50_s1']
        """
        return (
            ["audio_only", "aligned"]
            + [f"shuffle_s{s}" for s in self.shuffle_seeds]
            + ["conflict"]
            + [corrupt_name(p, s) for s in self.corrupt_seeds for p in self.corrupt_p]
        )


def corrupt_name(p: float, seed: int) -> str:
    """``corrupt_p{pct}_s{seed}`` with pct = round(100 p)."""
    return f"{corrupt_level(p)}_s{seed}"


def vocabulary(concept: str, n_bins: int, voice_quality: Sequence[str] | None = None) -> list[str]:
    """Every value a concept's token can take.

    ``voice_quality``: the VOICE_QUALITY values the tokens stage can give
    (:func:`cueprobe.tokens.voice_quality_values` of its rule order); None: all six.
    """
    if concept == Concept.VOICE_QUALITY:
        return list(voice_quality_values() if voice_quality is None else voice_quality)
    return level_names(concept, n_bins)


def _check_tokens_iv(tokens: pd.DataFrame, n_bins: int) -> None:
    missing = [c for c in ("utt_id", *CONCEPT_COLUMNS) if c not in tokens.columns]
    if missing:
        raise ValueError(f"`tokens` lacks column(s) {missing}.")
    for concept in CONCEPT_COLUMNS:
        allowed = set(vocabulary(concept, n_bins))
        if set(pd.unique(tokens[concept].to_numpy(dtype=object))) <= allowed:
            continue  # the usual case, checked on the distinct values alone
        bad = tokens.loc[~tokens[concept].isin(allowed), concept]
        if len(bad):
            first = ", ".join(map(repr, bad.unique()[:5]))
            raise ValueError(
                f"`tokens` column {concept} has {len(bad)} value(s) outside its {n_bins}-bin "
                f"vocabulary: {first}. Was the token table built with another n_bins?"
            )


def aligned(tokens: pd.DataFrame, *, n_bins: int) -> pd.DataFrame:
    """The utterances' own tokens (``utt_id`` + the six concept columns)."""
    _check_tokens_iv(tokens, n_bins)
    return tokens[["utt_id", *CONCEPT_COLUMNS]].reset_index(drop=True)


def shuffle(
    tokens: pd.DataFrame, *, n_bins: int, groups: Sequence[str] | None, rng: np.random.Generator
) -> pd.DataFrame:
    """Reassign whole token sequences across utterances within each group.

    Parameters
    ----------
    tokens : pandas.DataFrame
        ``utt_id`` and the six concept columns, one row per utterance.
    groups : sequence of str or None
        Group of each row (e.g. the split); None permutes across all rows.
    rng : numpy.random.Generator
        Source of the permutation.
    """
    out = aligned(tokens, n_bins=n_bins)
    keys = np.zeros(len(out), dtype=int) if groups is None else pd.factorize(np.asarray(groups))[0]
    if len(keys) != len(out):
        raise ValueError(f"`groups` has {len(keys)} entries for {len(out)} token rows.")
    source = np.arange(len(out))
    for g in np.unique(keys):
        idx = np.flatnonzero(keys == g)
        source[idx] = idx[rng.permutation(len(idx))]
    out[list(CONCEPT_COLUMNS)] = out[list(CONCEPT_COLUMNS)].to_numpy()[source]
    return out


def conflict(
    tokens: pd.DataFrame,
    *,
    n_bins: int,
    voice_quality_map: Mapping[str, str],
    voice_quality: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Invert every ordinal bin (i -> n-1-i) and map VOICE_QUALITY to its opposite.

    ``voice_quality``: the values the tokens stage can give (see :func:`vocabulary`); an
    opposite outside them would be a token no aligned block ever shows.
    """
    out = aligned(tokens, n_bins=n_bins)
    present = set(out[Concept.VOICE_QUALITY])
    missing = sorted(present - set(voice_quality_map))
    if missing:
        raise ValueError(
            f"`voice_quality_map` has no opposite for {missing}; "
            "add them to interventions.conflict_voice_quality in the config."
        )
    allowed = set(vocabulary(Concept.VOICE_QUALITY, n_bins, voice_quality))
    unseen = sorted({voice_quality_map[v] for v in present} - allowed)
    if unseen:
        raise ValueError(
            f"`voice_quality_map` gives {unseen}, which the voice quality rule never "
            f"gives (it gives {sorted(allowed)}): a conflicting token no aligned block shows."
        )
    for concept in ORDINAL_CONCEPTS:
        levels = level_names(concept, n_bins)
        out[concept] = out[concept].map(dict(zip(levels, levels[::-1], strict=True)))
    out[Concept.VOICE_QUALITY] = out[Concept.VOICE_QUALITY].map(dict(voice_quality_map))
    return out


def corrupt(
    tokens: pd.DataFrame,
    *,
    n_bins: int,
    p: float,
    rng: np.random.Generator,
    voice_quality: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Replace each token, with probability ``p``, by a uniform draw from its vocabulary.

    The same ``rng`` state gives nested corruptions across ``p`` (common random numbers).
    ``voice_quality``: the VOICE_QUALITY values drawn from (see :func:`vocabulary`): only
    those the tokens stage can give, so a corrupted token is never one no aligned block
    shows.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"`p` must lie in [0, 1], got {p!r}.")
    out = aligned(tokens, n_bins=n_bins)
    u = rng.random((len(out), len(CONCEPT_COLUMNS)))
    draws = rng.random((len(out), len(CONCEPT_COLUMNS)))
    for j, concept in enumerate(CONCEPT_COLUMNS):
        vocab = np.array(vocabulary(concept, n_bins, voice_quality), dtype=object)
        replacement = vocab[(draws[:, j] * len(vocab)).astype(int)]
        # one column set, not a .loc per concept; a copy (to_numpy may hand back the
        # frame's own buffer, read-only or shared with the caller's table), in its dtype
        dtype = out[concept].dtype
        if isinstance(dtype, pd.CategoricalDtype):  # a draw outside its categories: NaN
            dtype = object
        values = out[concept].to_numpy(dtype=object, copy=True)
        hit = u[:, j] < p
        values[hit] = replacement[hit]
        out[concept] = pd.Series(values, index=out.index, dtype=dtype)
    return out


def kept_aligned(token_strings: Sequence[str], aligned_strings: Sequence[str]) -> int:
    """How many rows keep their aligned token block (rows in the same utterance order).

    Examples
    --------
    >>> kept_aligned(["a", "b", "c"], ["a", "c", "b"])
    1
    """
    token_strings, aligned_strings = np.asarray(token_strings), np.asarray(aligned_strings)
    if token_strings.shape != aligned_strings.shape:
        raise ValueError(
            f"{len(token_strings)} token strings for {len(aligned_strings)} aligned ones."
        )
    return int((token_strings == aligned_strings).sum())


def audio_only(tokens: pd.DataFrame) -> pd.DataFrame:
    """No token block: ``utt_id`` with null token columns."""
    out = pd.DataFrame({"utt_id": tokens["utt_id"].to_numpy()})
    for concept in CONCEPT_COLUMNS:
        out[concept] = pd.Series([None] * len(out), dtype=object)
    return out


def corrupt_level(p: float) -> str:
    """The level of the corruption runs at ``p``, their seeds pooled (``corrupt_p100``).

    Examples
    --------
    >>> corrupt_level(1.0), corrupt_level(0.25)
    ('corrupt_p100', 'corrupt_p25')
    """
    return f"corrupt_p{round(100 * p)}"


def parse_condition(name: str) -> tuple[str, float | None, int | None]:
    """``(kind, p, seed)`` of a condition name; the inverse of :meth:`ConditionSpec.names`.

    Examples
    --------
    >>> parse_condition("corrupt_p25_s3")
    ('corrupt', 0.25, 3)
    >>> parse_condition("shuffle_s1")
    ('shuffle', None, 1)
    """
    if name in ("audio_only", "aligned", "conflict"):
        return name, None, None
    m = re.fullmatch(r"shuffle_s(\d+)", name)
    if m:
        return "shuffle", None, int(m[1])
    m = re.fullmatch(r"corrupt_p(\d+)_s(\d+)", name)
    if m and int(m[1]) <= 100:
        return "corrupt", int(m[1]) / 100, int(m[2])
    raise ValueError(
        f"unknown condition {name!r}: expected audio_only, aligned, conflict, shuffle_s<seed> "
        "or corrupt_p<percent>_s<seed>."
    )


def condition_levels(conditions: Sequence[str]) -> dict[str, list[str]]:
    """Group condition names into levels: seeds of one intervention pooled.

    ``shuffle_s*`` -> ``shuffle``; ``corrupt_p{pct}_s*`` -> ``corrupt_p{pct}``;
    the others are their own level. Order follows first appearance.

    Examples
    --------
    >>> condition_levels(["aligned", "shuffle_s0", "shuffle_s1", "corrupt_p50_s0"])
    {'aligned': ['aligned'], 'shuffle': ['shuffle_s0', 'shuffle_s1'], 'corrupt_p50': ['corrupt_p50_s0']}
    """
    levels: dict[str, list[str]] = {}
    for name in conditions:
        kind, p, _ = parse_condition(name)
        level = f"corrupt_p{round(100 * p)}" if kind == "corrupt" else kind
        levels.setdefault(level, []).append(name)
    return levels


def build_condition(
    name: str,
    tokens: pd.DataFrame,
    *,
    n_bins: int,
    groups: Sequence[str] | None,
    voice_quality_map: Mapping[str, str],
    template: str,
    separator: str,
    rng: np.random.Generator | None,
    voice_quality: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One condition table: ``utt_id``, the six concept columns and ``token_string``.

    ``rng`` is required for shuffle and corrupt conditions (seeded from the condition's
    seed by the caller) and ignored otherwise. ``voice_quality``: the VOICE_QUALITY
    values the tokens stage can give (see :func:`vocabulary`), for conflict and corrupt.
    """
    kind, p, _ = parse_condition(name)
    if kind in ("shuffle", "corrupt") and rng is None:
        raise ValueError(f"condition {name!r} is random: pass an `rng`.")
    if kind == "audio_only":
        out = audio_only(tokens)
    elif kind == "aligned":
        out = aligned(tokens, n_bins=n_bins)
    elif kind == "conflict":
        out = conflict(
            tokens,
            n_bins=n_bins,
            voice_quality_map=voice_quality_map,
            voice_quality=voice_quality,
        )
    elif kind == "shuffle":
        out = shuffle(tokens, n_bins=n_bins, groups=groups, rng=rng)
    else:
        out = corrupt(tokens, n_bins=n_bins, p=p, rng=rng, voice_quality=voice_quality)
    if kind == "audio_only":
        out["token_string"] = pd.Series([None] * len(out), dtype=object)
    else:
        out["token_string"] = serialise_tokens(out, template=template, separator=separator)
    return out
