"""The ``reference`` backend: a small supervised CPU model, the demo default and a baseline row.

It is deliberately *not* an audio language model, and never presented as one:

* the audio becomes log-mel statistics (mean and standard deviation over frames of
  ``n_mels`` log-mel bands, 25 ms windows, 10 ms hop), an embedding that is not eGeMAPS,
  so the token block adds information the audio embedding does not spell out;
* the tokens are read back from the prompt text (``CONCEPT=VALUE`` pairs through the
  configured token template) and one-hot encoded; a prompt without a token
  block encodes as all zeros;
* a multinomial logistic regression maps the two to a label, and the answer is the label
  text itself (``raw_output == pred``).

Two classifiers are trained on the corpus' train split and saved separately:

``audio``
    log-mel statistics only. It answers every prompt without a token block, so
    ``audio_only`` predictions do not depend on the tokens: a change of the token bins
    never re-runs them (DESIGN.md, "Incremental by design").
``tokens``
    log-mel statistics + token one-hots, trained with token augmentation: each training
    copy drops its whole token block with probability ``token_dropout`` and replaces each
    token with probability ``token_corrupt`` by a uniform draw from the concept's
    vocabulary (:func:`cueprobe.interventions.corrupt`), so it handles both prompt formats
    and does not trust the tokens blindly. It answers every prompt with a token block.

Everything is deterministic: the augmentation draws from an explicit ``rng`` and the
solver (lbfgs) is deterministic.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import pickle
import re
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cueprobe import io
from cueprobe.audio import load_audio
from cueprobe.audio import read_or_none
from cueprobe.backends.base import BackendInfo
from cueprobe.backends.base import Request
from cueprobe.interventions import CONCEPT_COLUMNS
from cueprobe.interventions import corrupt
from cueprobe.interventions import vocabulary
from cueprobe.tokens import check_token_template

__all__ = [
    "SAMPLING_RATE",
    "ReferenceBackend",
    "ReferenceClassifier",
    "encode_tokens",
    "fit_reference",
    "log_mel_statistics",
    "mel_filterbank",
    "parse_token_block",
    "embed_file",
    "embedding_columns",
    "embedding_table",
    "embedding_values",
    "embeddings_of",
    "finite_rows",
]

log = logging.getLogger(__name__)

#: the embedding's sampling rate; files at other rates are resampled (polyphase)
SAMPLING_RATE = 16000
_WIN = 400  # 25 ms
_HOP = 160  # 10 ms
_N_FFT = 512


# -- audio embedding -----------------------------------------------------------------------


def embed_file(path: str, *, n_mels: int = 40) -> np.ndarray:
    """The reference model's audio embedding of one file (training and inference alike).

    A file that cannot be read or decoded, or holds NaN or infinite samples, embeds as
    NaN (with a warning naming it), as the features stage records it ``unreadable``
    and a ``transformers`` model gives it an error answer: such an utterance is left out
    of training (:func:`finite_rows`) and gets an error answer, not a label.
    """
    signal = read_or_none(path, lambda p: load_audio(p, SAMPLING_RATE, dtype="float64"))
    if signal is None:
        return np.full(2 * n_mels, np.nan)
    return log_mel_statistics(signal, n_mels=n_mels)


def finite_rows(embeddings: np.ndarray) -> np.ndarray:
    """Rows that have an embedding (no NaN: :func:`embed_file` of an unreadable file)."""
    return np.isfinite(embeddings).all(axis=1)


def embedding_columns(n_mels: int = 40) -> list[str]:
    """Value columns of an :func:`embedding_table`: ``logmel_000`` ... (2 * n_mels)."""
    return [f"logmel_{i:03d}" for i in range(2 * n_mels)]


def embedding_table(
    utt_ids: Sequence[str], paths: Sequence[str], *, n_mels: int = 40
) -> pd.DataFrame:
    """:func:`embed_file` of every file: ``utt_id`` + ``logmel_000``... (2 * n_mels floats).

    Computed once per corpus (it depends on the audio only), so that training with
    new tokens and answering token conditions never read audio again.
    """
    data = [embed_file(p, n_mels=n_mels) for p in paths]
    table = pd.DataFrame(
        np.vstack(data) if data else np.empty((0, 2 * n_mels)), columns=embedding_columns(n_mels)
    )
    table.insert(0, "utt_id", list(utt_ids))
    return table


def embedding_values(table: pd.DataFrame, n_mels: int, *, source: str) -> pd.DataFrame:
    """The :func:`embedding_columns` of ``table`` by name, indexed by ``utt_id``.

    Read by name, not position: a table whose columns were reordered, or that carries
    other columns, must not feed the classifier other numbers than it was trained on.
    """
    columns = embedding_columns(n_mels)
    width = sum(str(c).startswith("logmel_") for c in table.columns)
    absent = [c for c in columns if c not in table.columns]
    if absent or width != len(columns):
        raise ValueError(
            f"{source}: not a table of {n_mels}-band log-mel embeddings ({len(columns)} "
            f"columns logmel_000...): it has {width} logmel_ column(s) and "
            f"{list(table.columns)[:4]}..."
        )
    values = table.set_index("utt_id")[columns]
    numeric = [c for c in columns if not pd.api.types.is_float_dtype(values[c])]
    if numeric:
        raise ValueError(f"{source}: embedding column(s) {numeric[:3]} are not floats.")
    return values


def embeddings_of(
    table: pd.DataFrame, utt_ids: Sequence[str], *, n_mels: int, source: str
) -> np.ndarray:
    """Rows of an :func:`embedding_table` for ``utt_ids``, in order (missing ones fail)."""
    indexed = embedding_values(table, n_mels, source=source)
    absent = [u for u in utt_ids if u not in indexed.index]
    if absent:
        raise ValueError(
            f"{source}: no embedding for {len(absent)} utterance(s): {', '.join(map(repr, absent[:5]))}."
        )
    return indexed.loc[list(utt_ids)].to_numpy(dtype=np.float64)


def mel_filterbank(n_mels: int, *, n_fft: int, sampling_rate: int) -> np.ndarray:
    """Triangular mel filters (HTK mel scale), shape ``(n_mels, n_fft // 2 + 1)``."""

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(sampling_rate / 2), n_mels + 2))
    freqs = np.linspace(0.0, sampling_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def log_mel_statistics(
    signal: np.ndarray, *, sampling_rate: int = SAMPLING_RATE, n_mels: int = 40
) -> np.ndarray:
    """Mean and standard deviation over frames of the log-mel spectrogram.

    Parameters
    ----------
    signal : numpy.ndarray
        Mono signal at ``sampling_rate``.
    sampling_rate : int, default: 16000
        Rate of ``signal`` in Hz.
    n_mels : int, default: 40
        Number of mel bands.

    Returns
    -------
    numpy.ndarray of shape (2 * n_mels,)
        ``[means, stds]`` of log mel power (25 ms Hann windows, 10 ms hop); a clip shorter
        than one window is zero-padded to one frame.

    Examples
    --------
    >>> t = np.arange(16000) / 16000
    >>> log_mel_statistics(np.sin(2 * np.pi * 200 * t)).shape
    (80,)
    """
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 1:
        raise ValueError(f"`signal` must be 1-D (mono), got shape {signal.shape}.")
    if len(signal) < _WIN:
        signal = np.pad(signal, (0, _WIN - len(signal)))
    frames = np.lib.stride_tricks.sliding_window_view(signal, _WIN)[::_HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(_WIN), n=_N_FFT)) ** 2
    mel = power @ mel_filterbank(n_mels, n_fft=_N_FFT, sampling_rate=sampling_rate).T
    logmel = np.log(mel + 1e-10)
    return np.concatenate([logmel.mean(axis=0), logmel.std(axis=0)])


# -- tokens read back from the prompt --------------------------------------------------------


def _token_patterns(template: str) -> dict[str, re.Pattern[str]]:
    check_token_template(template)
    patterns = {}
    for concept in CONCEPT_COLUMNS:
        text = re.escape(template)
        text = text.replace(re.escape("{concept}"), rf"\b{concept}", 1)
        # a value is one upper-case token (VERY_LOW, MODAL): the block may end mid-line
        # ("Cues: {tokens}. Pick one of: ..." took "MODAL. Pick one of: ..." as a value)
        text = text.replace(re.escape("{value}"), r"(?P<value>[A-Z][A-Z0-9_]*)(?![\w])", 1)
        patterns[concept] = re.compile(text)
    return patterns


def parse_token_block(prompt: str, *, template: str) -> dict[str, str]:
    """The ``concept -> value`` pairs found in a prompt; empty without a token block.

    Examples
    --------
    >>> parse_token_block(
    ...     "Which emotion?\\nCues: ENERGY=HIGH; PITCH=VERY_LOW", template="{concept}={value}"
    ... )
    {'ENERGY': 'HIGH', 'PITCH': 'VERY_LOW'}
    >>> parse_token_block("Which emotion?", template="{concept}={value}")
    {}
    >>> parse_token_block(
    ...     "Cues: ENERGY=LOW; VOICE_QUALITY=MODAL. Pick one of: angry, sad.",
    ...     template="{concept}={value}",
    ... )
    {'ENERGY': 'LOW', 'VOICE_QUALITY': 'MODAL'}
    """
    found = {}
    for concept, pattern in _token_patterns(template).items():
        m = pattern.search(prompt)
        if m:
            found[concept] = m.group("value")
    return found


def _vocab(n_bins: int) -> list[tuple[str, str]]:
    return [(c, v) for c in CONCEPT_COLUMNS for v in vocabulary(c, n_bins)]


def encode_tokens(rows: Sequence[Mapping[str, Any]], *, n_bins: int) -> np.ndarray:
    """One-hot encode token rows (concept -> value; missing or None -> zeros).

    Returns
    -------
    numpy.ndarray of shape (len(rows), n_values)
        One column per (concept, value) of the ``n_bins`` vocabularies.

    Raises
    ------
    ValueError
        When a value is outside its concept's vocabulary (tokens made with another
        ``n_bins`` than the model was trained with).
    """
    index = {key: j for j, key in enumerate(_vocab(n_bins))}
    out = np.zeros((len(rows), len(index)))
    for i, row in enumerate(rows):
        for concept in CONCEPT_COLUMNS:
            value = row.get(concept)
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            j = index.get((concept, value))
            if j is None:
                raise ValueError(
                    f"token {concept}={value!r} is not in the {n_bins}-bin vocabulary "
                    f"{vocabulary(concept, n_bins)}; retrain the reference model on these tokens."
                )
            out[i, j] = 1.0
    return out


# -- the classifier ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReferenceClassifier:
    """A trained reference classifier (``audio`` or ``tokens``) and what it needs to run.

    Attributes
    ----------
    kind : str
        ``"audio"`` (log-mel statistics) or ``"tokens"`` (log-mel + token one-hots).
    labels : tuple of str
        The class set, in config order.
    model : dict of numpy.ndarray
        The fitted standardisation + multinomial logistic regression as plain arrays
        (``mean``, ``scale``, ``coef`` of shape (classes, features), ``intercept``,
        ``classes``; :func:`fit_logistic_regression`): predicting needs numpy only.
    n_mels : int
        Bands of the log-mel embedding.
    n_bins, token_template, token_separator : int, str, str or None
        How tokens look in prompts (``tokens`` kind; None for ``audio``).
    n_train : int
        Training utterances (before augmentation).
    options : dict
        Training options, for provenance.
    """

    kind: str
    labels: tuple[str, ...]
    model: dict[str, np.ndarray]
    n_mels: int
    n_bins: int | None
    token_template: str | None
    token_separator: str | None
    n_train: int
    options: dict[str, Any]

    def predict(self, embeddings: np.ndarray, tokens: Sequence[Mapping[str, Any]]) -> list[str]:
        """Labels for rows of log-mel statistics (+ token rows for the ``tokens`` kind)."""
        x = np.asarray(embeddings, dtype=np.float64)
        if self.kind == "tokens":
            x = np.hstack([x, encode_tokens(tokens, n_bins=self.n_bins)])
        m = self.model
        scores = ((x - m["mean"]) / m["scale"]) @ m["coef"].T + m["intercept"]
        if scores.shape[1] == 1:  # a binary row (older files): positive -> classes[1]
            index = (scores[:, 0] > 0).astype(int)
        else:
            index = scores.argmax(axis=1)
        return [str(c) for c in m["classes"][index]]

    def save(self, path: str | Path) -> None:
        """Pickle the classifier (the CLI writes it atomically beside its final path)."""
        with open(path, "wb") as f:
            pickle.dump(self, f, protocol=5)

    @staticmethod
    def load(path: str | Path) -> ReferenceClassifier:
        """Load a classifier written by :meth:`save` (only load files this pipeline wrote)."""
        with open(path, "rb") as f:
            try:
                obj = pickle.load(f)
            except Exception as err:  # EOFError, UnpicklingError, ImportError ...: a traceback
                raise ValueError(  # naming no file; an older file needs sklearn, not installed
                    f"{path} cannot be read as a reference classifier ({type(err).__name__}: "
                    f"{err}): damaged, cut short, not a classifier, or written by an older "
                    "cueprobe. Delete it to retrain."
                ) from None
        if not isinstance(obj, ReferenceClassifier):
            raise ValueError(f"{path} does not hold a ReferenceClassifier.")
        if not isinstance(getattr(obj, "model", None), dict):
            raise ValueError(f"{path} was written by an older cueprobe: delete it to retrain.")
        return obj


def fit_reference(
    embeddings: np.ndarray,
    y: Sequence[str],
    *,
    labels: Sequence[str],
    tokens: pd.DataFrame | None,
    C: float,
    class_weight: str | None = "balanced",
    n_bins: int | None = None,
    token_template: str | None = None,
    token_separator: str | None = None,
    token_dropout: float = 0.0,
    token_corrupt: float = 0.0,
    n_copies: int = 4,
    rng: np.random.Generator,
    voice_quality: Sequence[str] | None = None,
) -> ReferenceClassifier:
    """Train the ``audio`` (``tokens=None``) or ``tokens`` reference classifier.

    Parameters
    ----------
    embeddings : numpy.ndarray of shape (n, 2 * n_mels)
        :func:`log_mel_statistics` of the training utterances.
    y : sequence of str, length n
        Their labels.
    labels : sequence of str
        The class set; every ``y`` must be in it.
    tokens : pandas.DataFrame or None
        ``utt_id`` + the six token columns of the same n utterances, in the same order;
        None trains the audio-only classifier (the token options are then unused).
    C : float
        Inverse L2 regularisation strength of the logistic regression.
    class_weight : {"balanced", None}, default: "balanced"
        ``"balanced"`` weighs each training utterance by ``n / (k n_class)`` (scikit-learn's
        ``class_weight="balanced"``): the model is scored by UAR, every class counting
        alike, and FAU-Aibo's train split is ~56 % Neutral, ~3 % Positive; unweighted, the
        classifier leans to the large classes. None: every utterance counts alike.
    n_bins : int
        Bins of the ordinal concepts (token vocabularies); required with ``tokens``.
    token_template, token_separator : str
        How the token block is serialised in prompts (config ``tokens``); required with
        ``tokens``.
    token_dropout : float, default: 0
        Probability that a training copy loses its whole token block.
    token_corrupt : float, default: 0
        Probability that each token of a training copy is replaced by a uniform draw.
    n_copies : int, default: 4
        Augmented copies of the training set (``tokens`` kind).
    rng : numpy.random.Generator
        Source of the augmentation.
    voice_quality : sequence of str, optional
        The VOICE_QUALITY values the tokens stage can give (its rule order): the
        augmentation's corruptions draw from them, as the corrupt conditions do; None: all.

    Returns
    -------
    ReferenceClassifier
    """
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(y, dtype=object)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"`embeddings` has shape {x.shape} for {len(y)} labels.")
    unknown = sorted(set(y) - set(labels))
    if unknown:
        raise ValueError(f"training labels {unknown} are not in the class set {list(labels)}.")
    absent = [lab for lab in labels if lab not in set(y)]
    if absent:  # it could never answer them, and would be scored as if it could
        raise ValueError(
            f"the training split has no utterance of class(es) {absent} (of {list(labels)}): "
            "the reference classifier could never answer them. Leave them out of `labels:` "
            "or give the train split speakers who have them."
        )
    kind = "audio" if tokens is None else "tokens"
    if tokens is not None:
        if n_bins is None or token_template is None or token_separator is None:
            raise ValueError(
                "a tokens classifier needs `n_bins`, `token_template` and `token_separator`."
            )
        _token_patterns(token_template)  # fail early on a bad template
        if len(tokens) != len(y):
            raise ValueError(f"`tokens` has {len(tokens)} rows for {len(y)} training utterances.")
        blocks = []
        for _ in range(n_copies):
            copy = corrupt(
                tokens, n_bins=n_bins, p=token_corrupt, rng=rng, voice_quality=voice_quality
            )
            onehot = encode_tokens(copy[list(CONCEPT_COLUMNS)].to_dict("records"), n_bins=n_bins)
            onehot[rng.random(len(copy)) < token_dropout] = 0.0
            blocks.append(np.hstack([x, onehot]))
        x = np.vstack(blocks)
        y = np.tile(y, n_copies)
    mean, scale = standardisation(x)
    classes = np.unique(y)
    coef, intercept = fit_logistic_regression(
        (x - mean) / scale, np.searchsorted(classes, y), C=C, class_weight=class_weight
    )
    return ReferenceClassifier(
        kind=kind,
        labels=tuple(labels),
        model={
            "mean": mean,
            "scale": scale,
            "coef": coef,
            "intercept": intercept,
            "classes": np.asarray(classes, dtype=object),
        },
        n_mels=len(embeddings[0]) // 2,
        n_bins=n_bins,
        token_template=token_template,
        token_separator=token_separator,
        n_train=len(embeddings),
        options={
            "C": C,
            "class_weight": class_weight,
            "token_dropout": token_dropout,
            "token_corrupt": token_corrupt,
            "n_copies": n_copies if tokens is not None else 1,
        },
    )


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations, 1 for a constant column (as scikit-learn).

    Constant up to rounding counts as constant (scikit-learn's test): a log-mel band that
    sits at the floor in every training file has a standard deviation of ~1e-15, and
    dividing by it would blow any other value up 10^14 times at prediction.

    Examples
    --------
    >>> mean, scale = standardisation(np.array([[1.0, np.log(1e-10)], [3.0, np.log(1e-10)]]))
    >>> mean.round(2).tolist(), scale.tolist()
    ([2.0, -23.03], [1.0, 1.0])
    """
    n = len(x)
    mean, var = x.mean(axis=0), x.var(axis=0)
    eps = np.finfo(np.float64).eps
    scale = np.sqrt(var)
    constant = (var <= n * eps * var + (n * mean * eps) ** 2) | (scale < 10 * eps)
    scale[constant] = 1.0
    return mean, scale


def fit_logistic_regression(
    x: np.ndarray,
    y: np.ndarray,
    *,
    C: float,
    class_weight: str | None = None,
    max_iter: int = 5000,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression, L2 on the weights: scikit-learn's objective.

    Minimises ``mean(w * log-loss) + ||W||^2 / (2 C n)`` (w = 1, or with
    ``class_weight="balanced"`` ``n / (k n_class)``, whose mean is 1, as scikit-learn's
    weights; the intercepts are not penalised;
    two classes: the binary model's penalty) with SciPy's L-BFGS-B, as ``sklearn.linear_model.LogisticRegression(C=C)`` does, to a
    tighter tolerance; the optimum is unique, and the tests compare the two. Written here
    because importing ``sklearn.linear_model`` costs 2 s (it imports ``scipy.stats``),
    eight times the fit, in a job that every change of the token bins re-runs.

    Parameters
    ----------
    x : numpy.ndarray of shape (n, d)
        Standardised inputs.
    y : numpy.ndarray of int, shape (n,)
        Class index of each row, in ``range(k)``.
    C : float
        Inverse regularisation strength.
    class_weight : {"balanced", None}, default: None
        Per-utterance weights of the log-loss, as scikit-learn's ``class_weight``.
    max_iter : int, default: 5000
        L-BFGS iterations.

    Returns
    -------
    coef : numpy.ndarray of shape (k, d)
    intercept : numpy.ndarray of shape (k,)
    """
    from scipy.optimize import minimize

    n, d = x.shape
    k = int(y.max()) + 1
    target = np.zeros((n, k))
    target[np.arange(n), y] = 1.0
    if class_weight not in ("balanced", None):
        raise ValueError(f"class_weight must be 'balanced' or None, got {class_weight!r}.")
    weight = (n / (k * np.bincount(y, minlength=k)))[y] if class_weight else np.ones(n)
    # scikit-learn fits two classes as one binary logistic regression; with the penalty
    # split over two rows, W = (-u/2, u/2), its C is C / 2 here: the same answers
    strength = (2.0 if k == 2 else 1.0) / (C * n)  # L2 weight on ||W||^2 / 2

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: k * d].reshape(k, d), theta[k * d :]
        z = x @ w.T + b
        top = z.max(axis=1, keepdims=True)
        lse = top + np.log(np.exp(z - top).sum(axis=1, keepdims=True))
        value = (weight * (lse[:, 0] - (z * target).sum(axis=1))).mean()
        value += strength * (w * w).sum() / 2
        g = (np.exp(z - lse) - target) * (weight / n)[:, None]
        grad = np.concatenate([(g.T @ x + strength * w).ravel(), g.sum(axis=0)])
        return float(value), grad

    result = minimize(
        loss,
        np.zeros(k * (d + 1)),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": 1e-9, "ftol": 1e-14},
    )
    if not result.success:
        log.warning("logistic regression: L-BFGS stopped early: %s", result.message)
    return result.x[: k * d].reshape(k, d), result.x[k * d :]


# -- the backend ---------------------------------------------------------------------------


def _cache_key(audio_key: str, n_mels: int) -> str:
    return f"{audio_key}\0{n_mels}"


class ReferenceBackend:
    """Answer requests with the reference classifiers.

    Prompts without a token block go to the ``audio`` classifier (when given, else to the
    ``tokens`` one, which was trained with token dropout); prompts with one go to the
    ``tokens`` classifier. Without a ``tokens`` classifier no prompt is searched for
    tokens: give one whenever the prompts carry token blocks.

    Parameters
    ----------
    audio : ReferenceClassifier or None
        The log-mel-only classifier.
    tokens : ReferenceClassifier or None
        The log-mel + tokens classifier.
    revision : str
        Identifies the trained weights (e.g. a hash of the model files).
    batch_size : int, default: 64
        Requests per runner batch.
    """

    def __init__(
        self,
        audio: ReferenceClassifier | None,
        tokens: ReferenceClassifier | None,
        *,
        revision: str,
        batch_size: int = 64,
    ) -> None:
        if audio is None and tokens is None:
            raise ValueError("the reference backend needs an audio or a tokens classifier.")
        for want, clf in (("audio", audio), ("tokens", tokens)):
            if clf is not None and clf.kind != want:
                raise ValueError(f"expected a {want!r} reference classifier, got {clf.kind!r}.")
        if audio is not None and tokens is not None and audio.labels != tokens.labels:
            raise ValueError(
                f"the audio and tokens classifiers disagree on the class set: "
                f"{list(audio.labels)} vs {list(tokens.labels)}."
            )
        self.audio = audio
        self.tokens = tokens
        self.batch_size = batch_size
        self.info = BackendInfo(
            model_id="cueprobe-reference (log-mel + tokens, logistic regression)",
            revision=revision,
            decoding="argmax",
        )
        self._embeddings: dict[str, np.ndarray] = {}

    def use_embeddings(self, table: pd.DataFrame, *, source: str = "the embeddings") -> None:
        """Answer from precomputed :func:`embedding_table` rows (keyed by ``audio_key``).

        Requests whose key is not in the table are embedded from their audio file.
        """
        for clf in (self.audio, self.tokens):
            if clf is None:
                continue
            try:
                values = embedding_values(table, clf.n_mels, source=source)
            except ValueError as err:
                raise ValueError(f"{err} The {clf.kind} classifier expects them.") from None
            for key, row in zip(values.index, values.to_numpy(dtype=np.float64), strict=True):
                self._embeddings[_cache_key(key, clf.n_mels)] = row

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], *, batch_size: int = 64) -> ReferenceBackend:
        """Load saved classifiers (one ``audio`` and/or one ``tokens``), and optionally
        an embeddings table (``.parquet``, :func:`embedding_table`).

        The revision is a hash of the files' bytes, so it names the trained weights.
        """
        h = hashlib.sha256()
        loaded: dict[str, ReferenceClassifier] = {}
        tables = []
        for path in sorted(map(str, paths)):
            h.update(Path(path).read_bytes())
            if path.endswith(".parquet"):
                tables.append(path)
                continue
            clf = ReferenceClassifier.load(path)
            if clf.kind in loaded:
                raise ValueError(f"two {clf.kind!r} reference classifiers given: {list(paths)}.")
            loaded[clf.kind] = clf
        backend = cls(
            loaded.get("audio"),
            loaded.get("tokens"),
            revision=h.hexdigest()[:12],
            batch_size=batch_size,
        )
        for path in tables:
            backend.use_embeddings(io.read_table(path, "embeddings"), source=path)
        return backend

    def _embed(self, request: Request, n_mels: int) -> np.ndarray:
        key = _cache_key(request.audio_key, n_mels)
        if key not in self._embeddings:
            self._embeddings[key] = embed_file(request.audio_path, n_mels=n_mels)
        return self._embeddings[key]

    def generate(self, requests: Sequence[Request]) -> list[str | None]:
        """One label per request, in order; None (an error answer) for a request whose
        audio has no embedding (unreadable: :func:`embed_file`)."""
        routed: dict[str, list[tuple[int, dict[str, str]]]] = {"audio": [], "tokens": []}
        for i, r in enumerate(requests):
            found = {}
            if self.tokens is not None:
                found = parse_token_block(r.prompt, template=self.tokens.token_template)
            routed["tokens" if found or self.audio is None else "audio"].append((i, found))
        answers: list[str | None] = [""] * len(requests)
        for kind, items in routed.items():
            if not items:
                continue
            clf = self.audio if kind == "audio" else self.tokens
            x = np.vstack([self._embed(requests[i], clf.n_mels) for i, _ in items])
            ok = finite_rows(x)
            for (i, _), has in zip(items, ok, strict=True):
                if not has:  # unreadable audio (embed_file): an error answer, as transformers'
                    answers[i] = None
            kept = [item for item, has in zip(items, ok, strict=True) if has]
            if kept:
                labels = clf.predict(x[ok], [found for _, found in kept])
                for (i, _), label in zip(kept, labels, strict=True):
                    answers[i] = label
        return answers
