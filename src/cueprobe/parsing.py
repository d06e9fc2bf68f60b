"""Deterministic answer parsing: free text -> one label of the set, or ``unparsed``.

Order: the whole (normalised) answer is a label (``exact``) or a configured
synonym (``synonym``); else the label or synonym mentioned first in the text
(``mention``); else ``unparsed``. There is no random or majority fallback: an
unparsed answer is counted as wrong downstream and its rate is reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Sequence

import pandas as pd

from cueprobe.define import ParseStatus

_PUNCT = re.compile(r"[^\w\s]+")


def _normalise(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def _vocabulary(labels: Mapping[str, Sequence[str]]) -> list[tuple[str, str, bool]]:
    """(normalised word, label, is_label) for labels and synonyms; longest first."""
    words = []
    for label, synonyms in labels.items():
        words.append((_normalise(label), label, True))
        words += [(_normalise(s), label, False) for s in synonyms if _normalise(s)]
    return sorted(words, key=lambda w: -len(w[0]))


def parse_answer(text: str | None, labels: Mapping[str, Sequence[str]]) -> tuple[str, str]:
    """Map one raw answer to ``(pred, parse_status)``; ``pred`` is "" when unparsed.

    Examples
    --------
    >>> labels = {"angry": ["anger"], "sad": ["sadness"]}
    >>> parse_answer("Sad.", labels)
    ('sad', 'exact')
    >>> parse_answer("Anger", labels)
    ('angry', 'synonym')
    >>> parse_answer("The speaker sounds sad, maybe angry.", labels)
    ('sad', 'mention')
    >>> parse_answer("I cannot tell.", labels)
    ('', 'unparsed')
    """
    if text is None:
        return "", ParseStatus.UNPARSED.value
    norm = _normalise(text)
    vocab = _vocabulary(labels)
    for word, label, is_label in vocab:
        if norm == word:
            return label, (ParseStatus.EXACT if is_label else ParseStatus.SYNONYM).value
    first: tuple[int, int, str] | None = None
    for word, label, _ in vocab:
        m = re.search(rf"\b{re.escape(word)}\b", norm)
        if m and (first is None or (m.start(), -len(word)) < (first[0], first[1])):
            first = (m.start(), -len(word), label)
    if first is not None:
        return first[2], ParseStatus.MENTION.value
    return "", ParseStatus.UNPARSED.value


def parse_answers(
    answers: Sequence[str | None], labels: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """Vectorised :func:`parse_answer`: a frame with ``pred`` and ``parse_status``."""
    if not labels:
        raise ValueError("`labels` is empty: the corpus config must name its classes.")
    cache: dict[str | None, tuple[str, str]] = {}
    rows = []
    for a in answers:
        if a not in cache:
            cache[a] = parse_answer(a, labels)
        rows.append(cache[a])
    return pd.DataFrame(rows, columns=["pred", "parse_status"])
