"""Deterministic answer parsing: free text -> one label of the set, or ``unparsed``.

Order: the whole (normalised) answer is a label (``exact``) or a configured
synonym (``synonym``); else, when the text mentions exactly one label (by its name or
its synonyms) and holds no negation, that label (``mention``: "The speaker sounds sad."
-> sad); else ``unparsed``. There is no random or majority fallback: an unparsed answer
is counted as wrong downstream and its rate is reported.

``mention`` goes one step beyond DESIGN.md (exact label, synonyms, else unparsed): 7B
ALMs often answer in a sentence although the prompt asks for one word, and scoring
"The speaker is sad." as wrong would measure formatting, not emotion. It takes only
unambiguous sentences: an answer naming two labels ("happy or sad? I'd say sad", "not
happy; they sound sad") or negating one ("Not angry.") is ``unparsed``, never the first
label it names (which favoured the first class of the prompt's label list).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from collections.abc import Sequence

import pandas as pd

from cueprobe.define import ParseStatus

_PUNCT = re.compile(r"[^\w\s]+")
#: a negation anywhere in an answer makes a mention ambiguous ("not angry", "isn't sad")
_NEGATION = re.compile(r"\b(?:not|non|no|never|neither|nor|without)\b|n['’]t\b")
#: synonyms that count as a whole answer only: too common in sentences to be a mention
#: (FAU-Aibo's ``rest`` is also "other": "Angry. Other emotions are unlikely." names one)
_NOT_A_MENTION = frozenset({"other"})


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
    >>> parse_answer("The speaker sounds sad.", labels)
    ('sad', 'mention')
    >>> parse_answer("The speaker sounds sad, maybe angry.", labels)
    ('', 'unparsed')
    >>> parse_answer("Not angry.", labels)
    ('', 'unparsed')
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
    mentioned = {
        label
        for word, label, _ in vocab
        if word not in _NOT_A_MENTION and re.search(rf"\b{re.escape(word)}\b", norm)
    }
    if len(mentioned) == 1 and not _NEGATION.search(text.lower()):
        return mentioned.pop(), ParseStatus.MENTION.value
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
