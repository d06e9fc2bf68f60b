"""Concept tokens (the paper's Table I) from file-level eGeMAPS means.

Each descriptor is robustly standardised (median and IQR over the fitting set),
the five scalar concept scores are means of standardised descriptors, and each
score is cut into ``n_bins`` quantile bins whose edges are fitted once per corpus
(per gender for the concepts a corpus lists). VOICE_QUALITY is a rule on robust
z-scores; when PITCH is gender-specific, the F0 z-score of its CREAKY clause is taken
within gender (``f0_by_group``), so a man at a typical male pitch is not CREAKY;
other genders, and everyone when PITCH is pooled, get the pooled F0 z-score.
Descriptor-to-concept grouping follows the eGeMAPS definitions (Eyben et al. 2016,
Sec. 3): loudness (intensity), F0 (pitch), spectral flux (temporal change), alpha
ratio / Hammarberg / slopes (spectral balance) and F1-F3 (formants).

Every utterance gets all six tokens: a NaN score (no voiced frame, a clip too
short for openSMILE) takes the middle level, and the reason stands in ``flag``; so
does a voiced clip whose VOICE_QUALITY rule could not see one of its descriptors
(``nan_vq:``; the rule then falls through to MODAL for lack of evidence).

Ties: a score equal to several inner edges at once (collapsed quantiles: a descriptor
floored at one value for much of the corpus, or constant in a gender group) takes the
middle of the bins those edges span, not the highest of them: a floored half of the
corpus lands in the middle levels instead of all in an extreme one. With distinct
edges this is the usual ``#{edges <= s}``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cueprobe.define import EGEMAPS_LLDS
from cueprobe.define import ORDINAL_CONCEPTS
from cueprobe.define import Concept
from cueprobe.define import VoiceQuality
from cueprobe.define import level_names
from cueprobe.features import ANALYSED
from cueprobe.features import FeatureStatus

#: feature statuses of a file that was not analysed: no features, every token filled in
_NOT_ANALYSED = tuple(s.value for s in FeatureStatus if s.value not in ANALYSED)

#: (descriptor, sign) per ordinal concept; the score is the mean of sign * z.
#: Hammarberg's index rises as the voice darkens, so it enters BRIGHTNESS negated.
CONCEPT_DESCRIPTORS: dict[Concept, tuple[tuple[str, int], ...]] = {
    Concept.ENERGY: (("Loudness_sma3", 1),),
    Concept.PITCH: (("F0semitoneFrom27.5Hz_sma3nz", 1),),
    Concept.DYNAMICS: (("spectralFlux_sma3", 1),),
    Concept.BRIGHTNESS: (
        ("alphaRatio_sma3", 1),
        ("hammarbergIndex_sma3", -1),
        ("slope0-500_sma3", 1),
        ("slope500-1500_sma3", 1),
    ),
    Concept.FORMANTS: (
        ("F1frequency_sma3nz", 1),
        ("F2frequency_sma3nz", 1),
        ("F3frequency_sma3nz", 1),
    ),
}

#: descriptors of the VOICE_QUALITY rule
VQ_DESCRIPTORS = {
    "f0": "F0semitoneFrom27.5Hz_sma3nz",
    "jitter": "jitterLocal_sma3nz",
    "shimmer": "shimmerLocaldB_sma3nz",
    "hnr": "HNRdBACF_sma3nz",
    "h1h2": "logRelF0-H1-H2_sma3nz",
    "h1a3": "logRelF0-H1-A3_sma3nz",
}

#: groups of gender-specific edges; other genders fall back to the pooled edges
GENDER_GROUPS = ("F", "M")
POOLED = "all"

TOKEN_COLUMNS: tuple[str, ...] = (
    "utt_id",
    *(f"score_{c}" for c in ORDINAL_CONCEPTS),
    *(c.value for c in Concept),
    "token_string",
    "flag",
)


class DegenerateDescriptorWarning(UserWarning):
    """A descriptor has zero (or undefined) IQR over the fitting set."""


class SparseGroupWarning(UserWarning):
    """A gender group has too few fitting rows for its own edges; pooled edges are used."""


@dataclasses.dataclass(frozen=True)
class VoiceQualityRule:
    """VOICE_QUALITY thresholds: robust-z threshold ``t``, UNVOICED floor, test order.

    MODAL is what remains when no rule in ``order`` fires.
    """

    threshold: float = 1.0
    unvoiced_floor: float = 0.1
    order: tuple[VoiceQuality, ...] = (
        VoiceQuality.UNVOICED,
        VoiceQuality.ROUGH,
        VoiceQuality.BREATHY,
        VoiceQuality.PRESSED,
        VoiceQuality.CREAKY,
    )

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError(f"voice_quality threshold must be > 0, got {self.threshold}.")
        if not 0 < self.unvoiced_floor <= 1:
            raise ValueError(
                f"voice_quality unvoiced_floor must be in (0, 1], got {self.unvoiced_floor}."
            )
        order = tuple(VoiceQuality(v) for v in self.order)
        if VoiceQuality.MODAL in order:
            raise ValueError("voice_quality order must not list MODAL: it is the fallback.")
        if len(set(order)) != len(order):
            raise ValueError(
                f"voice_quality order lists a value twice: {[v.value for v in order]}."
            )
        object.__setattr__(self, "order", order)


def voice_quality_values(order: Sequence[str] | None = None) -> tuple[str, ...]:
    """The VOICE_QUALITY values a rule testing ``order`` can give, in the enum's order.

    MODAL (the fallback) and UNVOICED (a clip without a voiced frame, whatever the
    order) always; every other value only if the order tests it. None: all six.

    Examples
    --------
    >>> voice_quality_values(["ROUGH", "UNVOICED"])
    ('UNVOICED', 'ROUGH', 'MODAL')
    >>> len(voice_quality_values())
    6
    """
    if order is None:
        return tuple(v.value for v in VoiceQuality)
    tested = {VoiceQuality(v) for v in order} | {VoiceQuality.MODAL, VoiceQuality.UNVOICED}
    return tuple(v.value for v in VoiceQuality if v in tested)


@dataclasses.dataclass(frozen=True)
class TokenEdges:
    """Everything needed to re-bin by hand: standardisation and bin edges.

    ``centre``/``scale`` are the median and IQR of each descriptor over the
    fitting set; ``edges[concept][group]`` are the ``n_bins - 1`` inner edges of
    a score (``group`` is ``"all"`` or a gender); a score ``s`` is in bin
    ``ceil((#{edges < s} + #{edges <= s}) / 2)``, i.e. ``#{edges <= s}`` unless ``s``
    sits on several equal edges (then the middle of the bins they span).
    ``f0_by_group`` standardises F0 within gender for the VOICE_QUALITY rule when PITCH
    is gender-specific.
    """

    n_bins: int
    fit_on: str
    n_fit: int
    centre: dict[str, float]
    scale: dict[str, float]
    edges: dict[str, dict[str, list[float]]]
    gender_specific: tuple[str, ...]
    f0_by_group: dict[str, tuple[float, float]]

    def levels(self, concept: Concept | str) -> list[str]:
        """Token values of an ordinal concept, lowest first."""
        return level_names(concept, self.n_bins)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (``token_edges.json``)."""
        return {
            "n_bins": self.n_bins,
            "fit_on": self.fit_on,
            "n_fit": self.n_fit,
            "rule": "robust z = (x - centre) / scale; score = mean of sign * z over the "
            "concept's descriptors; bin = ceil((#{inner edges < score} + #{inner edges <= "
            "score}) / 2), i.e. #{edges <= score} unless the score sits on several equal "
            "edges (group edges for gender_specific concepts when the gender has them, "
            "else 'all')",
            "descriptors": {
                c.value: [{"name": d, "sign": s} for d, s in CONCEPT_DESCRIPTORS[c]]
                for c in ORDINAL_CONCEPTS
            },
            "centre": self.centre,
            "scale": self.scale,
            "edges": self.edges,
            "levels": {c.value: self.levels(c) for c in ORDINAL_CONCEPTS},
            "gender_specific": list(self.gender_specific),
            "f0_by_group": {g: list(v) for g, v in self.f0_by_group.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TokenEdges:
        """Inverse of :meth:`to_dict`, also after a JSON file.

        :func:`cueprobe.io.write_json` writes NaN (the centre and scale of a
        descriptor without a finite value) as ``null``; ``None`` reads back as NaN.
        """
        return cls(
            n_bins=int(d["n_bins"]),
            fit_on=str(d["fit_on"]),
            n_fit=int(d["n_fit"]),
            centre={k: _float(v) for k, v in d["centre"].items()},
            scale={k: _float(v) for k, v in d["scale"].items()},
            edges={
                c: {g: [_float(x) for x in e] for g, e in ge.items()}
                for c, ge in d["edges"].items()
            },
            gender_specific=tuple(d["gender_specific"]),
            f0_by_group={g: (_float(v[0]), _float(v[1])) for g, v in d["f0_by_group"].items()},
        )


def _float(value: Any) -> float:
    """``float(value)``, with ``None`` (JSON's null for NaN) as NaN."""
    return math.nan if value is None else float(value)


def _merge_iv(features: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """Join features to the manifest's gender and split, checking both cover the same rows."""
    need_f = ["utt_id", *EGEMAPS_LLDS, "voiced_ratio", "status"]
    missing = [c for c in need_f if c not in features.columns]
    if missing:
        raise ValueError(f"features table lacks column(s) {missing[:5]}.")
    missing = [c for c in ("utt_id", "gender", "split") if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks column(s) {missing}.")
    only_f = sorted(set(features["utt_id"]) - set(manifest["utt_id"]))
    only_m = sorted(set(manifest["utt_id"]) - set(features["utt_id"]))
    if only_f or only_m:
        raise ValueError(
            f"features and manifest disagree: {len(only_m)} manifest utt_id(s) without "
            f"features (first {only_m[:5]}), {len(only_f)} feature rows not in the manifest "
            f"(first {only_f[:5]})."
        )
    meta = manifest[["utt_id", "gender", "split"]]
    return features.merge(meta, on="utt_id", how="left", validate="one_to_one")


def _fit_mask(df: pd.DataFrame, fit_on: str) -> np.ndarray:
    if fit_on not in ("all", "train"):
        raise ValueError(f"`fit_on` must be 'all' or 'train', got {fit_on!r}.")
    mask = (df["status"] == "ok").to_numpy().copy()
    if fit_on == "train":
        mask &= (df["split"] == "train").to_numpy()
    if not mask.any():
        rows = df if fit_on == "all" else df[df["split"] == "train"]
        counts = ", ".join(f"{k} {n}" for k, n in rows["status"].value_counts().items())
        hint = ""
        if (rows["status"] == "clipped").any():
            hint = ": rescale the audio into [-1, 1] (float files in int16 scale?)"
        elif (rows["status"] == "too_short").any():  # what to change, in the config
            hint = (
                ": too_short is a clip under features.min_duration_s or under 10 analysis "
                "frames (~0.17 s); lower min_duration_s if it was set above the corpus' clips"
            )
        raise ValueError(
            f"no utterance to fit token edges on (fit_on={fit_on!r}, status 'ok'); the "
            f"feature statuses there: {counts or 'none'}{hint}."
        )
    return mask


def _robust(x: np.ndarray, name: str) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        warnings.warn(
            f"descriptor {name!r} has no finite value in the fitting set; its z-scores are NaN.",
            DegenerateDescriptorWarning,
            stacklevel=3,
        )
        return math.nan, math.nan
    q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    iqr = float(q3 - q1)
    if not iqr > 0:
        warnings.warn(
            f"descriptor {name!r} has zero IQR over the fitting set; it is scaled by 1.",
            DegenerateDescriptorWarning,
            stacklevel=3,
        )
        iqr = 1.0
    return float(med), iqr


def _scores(
    df: pd.DataFrame, centre: Mapping[str, float], scale: Mapping[str, float]
) -> pd.DataFrame:
    out = {}
    for concept in ORDINAL_CONCEPTS:
        zs = [
            sign * (df[d].to_numpy(np.float64) - centre[d]) / scale[d]
            for d, sign in CONCEPT_DESCRIPTORS[concept]
        ]
        out[f"score_{concept}"] = np.mean(np.vstack(zs), axis=0)  # NaN if any part is NaN
    return pd.DataFrame(out, index=df.index)


def _quantile_edges(x: np.ndarray, n_bins: int) -> list[float]:
    return [float(e) for e in np.quantile(x, np.arange(1, n_bins) / n_bins)]


def fit_token_edges(
    features: pd.DataFrame,
    manifest: pd.DataFrame,
    *,
    n_bins: int,
    fit_on: str,
    gender_specific: Sequence[str] = (),
) -> TokenEdges:
    """Fit standardisation and quantile bin edges once per corpus.

    Parameters
    ----------
    features : DataFrame
        The gathered features table (``utt_id``, the 25 LLD means, ``voiced_ratio``, ``status``).
    manifest : DataFrame
        ``utt_id``, ``gender`` and ``split`` of the same utterances.
    n_bins : int
        Quantile bins per ordinal concept (3, 5, 7, ...).
    fit_on : {"all", "train"}
        Rows the medians, IQRs and edges are fitted on; only status ``ok`` rows count.
    gender_specific : sequence of str
        Ordinal concepts whose edges are fitted per gender (F, M).
    """
    level_names(Concept.PITCH, n_bins)  # validates n_bins
    bad = [c for c in gender_specific if c not in {k.value for k in ORDINAL_CONCEPTS}]
    if bad:
        raise ValueError(
            f"gender_specific lists {bad}; only ordinal concepts "
            f"{[c.value for c in ORDINAL_CONCEPTS]} have edges."
        )
    df = _merge_iv(features, manifest)
    mask = _fit_mask(df, fit_on)
    fit = df.loc[mask]
    if gender_specific and not fit["gender"].isin(GENDER_GROUPS).any():
        # genders spelled otherwise ("Female") would make the option silently do nothing
        seen = fit["gender"].astype(str).value_counts().to_dict()
        raise ValueError(
            f"gender_specific lists {list(gender_specific)}, but no fitting row has gender "
            f"{' or '.join(GENDER_GROUPS)} (genders of the fitting set: {seen}). Give the "
            "manifest's gender as F/M, or set this corpus' gender_specific to []."
        )
    centre, scale = {}, {}
    for d in EGEMAPS_LLDS:
        centre[d], scale[d] = _robust(fit[d].to_numpy(np.float64), d)
    scores = _scores(fit, centre, scale)
    edges: dict[str, dict[str, list[float]]] = {}
    for concept in ORDINAL_CONCEPTS:
        s = scores[f"score_{concept}"].to_numpy()
        ok = np.isfinite(s)
        if not ok.any():
            raise ValueError(f"no finite {concept} score in the fitting set (fit_on={fit_on!r}).")
        edges[concept.value] = {POOLED: _quantile_edges(s[ok], n_bins)}
        if concept.value in gender_specific:
            for g in GENDER_GROUPS:
                sel = ok & (fit["gender"] == g).to_numpy()
                if sel.sum() < n_bins:
                    warnings.warn(
                        f"{concept} edges for gender {g!r}: {int(sel.sum())} fitting rows "
                        f"< n_bins={n_bins}; using pooled edges.",
                        SparseGroupWarning,
                        stacklevel=2,
                    )
                    continue
                edges[concept.value][g] = _quantile_edges(s[sel], n_bins)
    f0_by_group: dict[str, tuple[float, float]] = {}
    if Concept.PITCH.value in gender_specific:
        f0 = VQ_DESCRIPTORS["f0"]
        for g in GENDER_GROUPS:
            x = fit.loc[fit["gender"] == g, f0].to_numpy(np.float64)
            if np.isfinite(x).sum() >= n_bins:
                f0_by_group[g] = _robust(x, f"{f0} ({g})")
    return TokenEdges(
        n_bins=n_bins,
        fit_on=fit_on,
        n_fit=int(mask.sum()),
        centre=centre,
        scale=scale,
        edges=edges,
        gender_specific=tuple(gender_specific),
        f0_by_group=f0_by_group,
    )


def bin_scores(scores: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin index of each score (NaN -> -1).

    The number of inner edges <= score; a score on several equal (collapsed) edges
    takes the middle of the bins they span, rounding up as a single edge does.

    Examples
    --------
    >>> bin_scores([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan], [0.0, 1.0]).tolist()
    [0, 1, 1, 2, 2, -1]
    >>> bin_scores([0.0, 0.0, -1.0], [-2.0, 0.0, 0.0, 3.0]).tolist()  # half the corpus at 0
    [2, 2, 1]
    """
    s = np.asarray(scores, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    below = np.searchsorted(e, s, side="left")  # edges < s
    upto = np.searchsorted(e, s, side="right")  # edges <= s
    return np.where(np.isfinite(s), (below + upto + 1) // 2, -1)


def _voice_quality(df: pd.DataFrame, edges: TokenEdges, rule: VoiceQualityRule) -> np.ndarray:
    t = rule.threshold
    z = {
        k: (df[d].to_numpy(np.float64) - edges.centre[d]) / edges.scale[d]
        for k, d in VQ_DESCRIPTORS.items()
    }
    f0 = df[VQ_DESCRIPTORS["f0"]].to_numpy(np.float64)
    for g, (med, iqr) in edges.f0_by_group.items():
        sel = (df["gender"] == g).to_numpy()
        z["f0"][sel] = (f0[sel] - med) / iqr
    analysed = df["status"].isin(ANALYSED).to_numpy()
    with np.errstate(invalid="ignore"):
        jit_hi, shim_hi = z["jitter"] > t, z["shimmer"] > t
        vr = df["voiced_ratio"].to_numpy(np.float64)
        fires = {
            VoiceQuality.UNVOICED: ~(vr >= rule.unvoiced_floor) | ~analysed,
            VoiceQuality.ROUGH: (jit_hi & shim_hi) | ((z["hnr"] < -t) & (jit_hi | shim_hi)),
            VoiceQuality.BREATHY: (z["hnr"] < -t) & (z["h1h2"] > t),
            VoiceQuality.PRESSED: (z["h1h2"] < -t) & (z["h1a3"] < -t),
            VoiceQuality.CREAKY: (z["f0"] < -t) & (z["jitter"] > t / 2),
        }
    out = np.full(len(df), VoiceQuality.MODAL.value, dtype=object)
    decided = np.zeros(len(df), dtype=bool)
    for value in rule.order:
        hit = fires[value] & ~decided
        out[hit] = value.value
        decided |= hit
    # whatever the order: no voiced frame (or no audio read) is no voice quality, never
    # MODAL (an order without UNVOICED labelled too-short clips "modal voice")
    out[~(vr > 0) | ~analysed] = VoiceQuality.UNVOICED.value
    return out


def check_token_template(template: str) -> None:
    """Raise unless ``template`` shows both ``{concept}`` and ``{value}`` and no other field.

    Without ``{value}`` every condition (aligned, shuffled, conflicting, corrupted) would
    put the same block in the prompt, and the interventions would measure nothing.

    Examples
    --------
    >>> check_token_template("{concept}={value}")
    >>> check_token_template("{concept}")
    Traceback (most recent call last):
    ...
    ValueError: token template '{concept}' must contain both {concept} and {value}.
    """
    import string

    try:
        fields = [f for f in string.Formatter().parse(template) if f[1] is not None]
    except ValueError as err:
        raise ValueError(f"token template {template!r} is no format string: {err}") from None
    # "{concept:>12}" formatted fine, but the reference model reads tokens back from the
    # prompt by the plain fields: every token block was ignored, UAR as audio-only
    odd = [f"{{{n}{'!' + c if c else ''}{':' + s if s else ''}}}" for _, n, s, c in fields
           if n not in ("concept", "value") or s or c]  # fmt: skip
    if odd:
        raise ValueError(
            f"token template {template!r} may use only plain {{concept}} and {{value}} (no "
            f"format spec or conversion): {', '.join(odd)}"
        )
    shown = template.format(concept="\0C", value="\0V")
    if "\0C" not in shown or "\0V" not in shown:
        raise ValueError(
            f"token template {template!r} must contain both {{concept}} and {{value}}."
        )


def serialise_tokens(tokens: pd.DataFrame, *, template: str, separator: str) -> pd.Series:
    """The token string of each row: ``separator.join(template.format(concept=, value=))``."""
    check_token_template(template)
    parts = [[template.format(concept=c.value, value=v) for v in tokens[c.value]] for c in Concept]
    return pd.Series(
        [separator.join(p) for p in zip(*parts, strict=True)], index=tokens.index, dtype=object
    )


def assign_tokens(
    features: pd.DataFrame,
    manifest: pd.DataFrame,
    edges: TokenEdges,
    *,
    voice_quality: VoiceQualityRule,
    template: str,
    separator: str,
) -> pd.DataFrame:
    """Scores, six tokens, the token string and a flag for every utterance.

    Returns
    -------
    DataFrame
        :data:`TOKEN_COLUMNS`, one row per ``features`` row, in its order. A NaN
        score takes the middle level (the upper middle for even ``n_bins``, as a score on
        collapsed edges does) and the reason goes to ``flag`` (``""`` when nothing is
        wrong); a gender-specific concept binned with the pooled edges (too few fitting
        rows of that gender, or a gender that is neither F nor M) is flagged
        ``pooled_edges:<concept>``; ``unvoiced`` stands for the UNVOICED token. Reasons
        join with ``;`` (``unvoiced;nan_score:PITCH;pooled_edges:FORMANTS``); a file
        that was not analysed (feature status other than ``ok``) is flagged with that
        status alone (``too_short``, ``silent``, ``unreadable``: not in :data:`ANALYSED`),
        every one of its tokens filled in; a ``clipped`` one's flag starts ``clipped``.
    """
    df = _merge_iv(features, manifest)
    scores = _scores(df, edges.centre, edges.scale)
    out = pd.DataFrame({"utt_id": df["utt_id"].astype(str).to_numpy()})
    middle = edges.n_bins // 2
    nan_concepts, pooled = [], []
    gender = df["gender"].astype(str).to_numpy()
    for concept in ORDINAL_CONCEPTS:
        s = scores[f"score_{concept}"].to_numpy()
        out[f"score_{concept}"] = s
        idx = bin_scores(s, edges.edges[concept.value][POOLED])
        for g, e in edges.edges[concept.value].items():
            if g != POOLED:
                sel = gender == g
                idx[sel] = bin_scores(s[sel], e)
        if concept.value in edges.gender_specific:
            # a group too small for its own edges, or a gender that is neither (unknown)
            fell_back = [g for g in GENDER_GROUPS if g not in edges.edges[concept.value]]
            own = np.isin(gender, GENDER_GROUPS) & ~np.isin(gender, fell_back)
            pooled.append(np.where(own, "", concept.value))
        names = np.array(edges.levels(concept), dtype=object)
        out[concept.value] = names[np.where(idx < 0, middle, idx)]
        nan_concepts.append(np.where(idx < 0, concept.value, ""))
    out[Concept.VOICE_QUALITY.value] = _voice_quality(df, edges, voice_quality)
    out["token_string"] = serialise_tokens(out, template=template, separator=separator)
    status = df["status"].astype(str).to_numpy()
    vq = out[Concept.VOICE_QUALITY.value].to_numpy()
    vq_nan = {k: df[d].isna().to_numpy() for k, d in VQ_DESCRIPTORS.items()}
    flags = []
    for i in range(len(df)):
        if status[i] not in ANALYSED:  # no measurement: every token is the filled-in one
            flags.append(status[i])
            continue
        unvoiced = vq[i] == VoiceQuality.UNVOICED  # the token, whatever the rule's order
        missing = [n[i] for n in nan_concepts if n[i]]
        # an UNVOICED clip's voice-quality descriptors are not read by the rule
        unseen = [] if unvoiced else [k for k, isnan in vq_nan.items() if isnan[i]]
        fell_back = [p[i] for p in pooled if p[i]]
        parts = ["clipped"] if status[i] == "clipped" else []
        parts += ["unvoiced"] if unvoiced else []
        parts += [f"nan_score:{'+'.join(missing)}"] if missing else []
        parts += [f"nan_vq:{'+'.join(unseen)}"] if unseen else []
        parts += [f"pooled_edges:{'+'.join(fell_back)}"] if fell_back else []
        flags.append(";".join(parts))
    out["flag"] = flags
    return out[list(TOKEN_COLUMNS)]


def measured_tokens(tokens: pd.DataFrame) -> pd.DataFrame:
    """Which tokens rest on a measurement, per row and concept (True) and which were filled in.

    An ordinal concept is filled in where its score is NaN (it took the middle level);
    VOICE_QUALITY where the file was not analysed (its ``flag`` is a feature status:
    the rule gave UNVOICED for want of frames) or the rule could not see one of its
    descriptors (``nan_vq:``: MODAL for lack of evidence). UNVOICED from the voiced-frame
    ratio is a measurement.

    Examples
    --------
    >>> t = pd.DataFrame({f"score_{c}": [0.1, float("nan"), float("nan")]
    ...                   for c in ORDINAL_CONCEPTS})
    >>> t["flag"] = ["", "unvoiced;nan_score:PITCH", "too_short"]
    >>> measured_tokens(t)[["PITCH", "VOICE_QUALITY"]].to_numpy().tolist()
    [[True, True], [False, True], [False, False]]
    """
    out = pd.DataFrame(index=tokens.index)
    for concept in ORDINAL_CONCEPTS:
        out[concept.value] = tokens[f"score_{concept}"].notna().to_numpy()
    parts = tokens["flag"].astype(str).str.split(";")
    not_analysed = parts.str[0].isin(_NOT_ANALYSED)
    unseen = tokens["flag"].astype(str).str.contains("nan_vq:", regex=False)
    out[Concept.VOICE_QUALITY.value] = (~not_analysed & ~unseen).to_numpy()
    return out


def tokenize(
    features: pd.DataFrame,
    manifest: pd.DataFrame,
    *,
    n_bins: int,
    fit_on: str,
    gender_specific: Sequence[str],
    voice_quality: VoiceQualityRule,
    template: str,
    separator: str,
) -> tuple[pd.DataFrame, TokenEdges]:
    """Fit edges on the corpus and assign tokens to every utterance (the ``tokens`` stage)."""
    edges = fit_token_edges(
        features, manifest, n_bins=n_bins, fit_on=fit_on, gender_specific=gender_specific
    )
    tokens = assign_tokens(
        features,
        manifest,
        edges,
        voice_quality=voice_quality,
        template=template,
        separator=separator,
    )
    return tokens, edges
