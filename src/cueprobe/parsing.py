"""Deterministic answer parsing: free text -> one label of the set, or ``unparsed``.

Order: the whole (normalised) answer is a label (``exact``) or a configured
synonym (``synonym``); else its first sentence is one ("Neutral. The voice is calm, not
angry or sad." -> neutral, ``mention``); else, when the text mentions exactly one label
(by its name or its synonyms) and no negation governs that mention, that label
(``mention``: "The speaker sounds sad." -> sad); else ``unparsed``. A negation governs a
mention when it comes before it in the same clause ("not angry", "nothing suggests
anger", "isnt sad", "un-happy"); one elsewhere ("Neutral, with no strong emotion") does
not. There is no random or majority fallback: an unparsed answer is counted as wrong
downstream and its rate is reported. The text is NFKC-normalised without format
characters or symbols first; a list keyed by labels with scores or yes/no is read as a
whole (its top score or its one yes; its first key was taken as the first sentence);
FAU-Aibo's ``other`` is never a mention, nor is ``rest`` in its everyday senses.

``mention`` goes one step beyond DESIGN.md (exact label, synonyms, else unparsed): 7B
ALMs often answer in a sentence although the prompt asks for one word, and scoring
"The speaker is sad." as wrong would measure formatting, not emotion. It takes only
unambiguous sentences: an answer naming two labels ("happy or sad? I'd say sad", "not
happy; they sound sad") or negating one ("Not angry.") is ``unparsed``, never the first
label it names (which favoured the first class of the prompt's label list).

A model that reasons before it answers (a think mode, e.g. Audio Flamingo 3's think
adapter) names several emotions on the way, so its whole output is ``unparsed``. A
model's ``answer_pattern`` (a regular expression, :func:`final_answer`) picks the answer
out first: its last match in the output is parsed; no match is ``unparsed``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from collections.abc import Sequence

import pandas as pd

from cueprobe.define import ParseStatus

_PUNCT = re.compile(r"[^\w\s]+")
_APOSTROPHE = re.compile(r"['’‘ʼ`′]")
#: clause boundaries: a negation reaches the labels after it up to the next one
_CLAUSE = re.compile(r"[.;:!?,()\n]+|\s[-–—]+\s")
#: where an answer's first sentence ends (a question mark: it is no statement)
_SENTENCE_END = re.compile(r"[.!:\n?]")
#: words and phrases that negate a label after them in their clause (apostrophes dropped:
#: "isnt"; "anything but angry", "far from happy", "frustrated rather than sad")
_NEGATION = re.compile(
    r"\b(?:"
    + "|".join(
        "not no non un never neither nor without nothing none nobody hardly barely lack lacks "
        "lacking absence absent cannot isnt arent wasnt werent dont doesnt didnt cant wont "
        "wouldnt shouldnt couldnt aint hasnt havent hadnt than".split()
        + ["anything but", "far from", "instead of"]
    )
    + r")\b"
)
#: words that take back a first sentence: the label named after one is no explanation
_CORRECTION = re.compile(r"\b(?:actually|on second|correction|i mean|wait)\b")
#: synonyms that count as a whole answer only: too common in sentences to be a mention
#: (FAU-Aibo's ``rest`` is also "other": "Angry. Other emotions are unlikely." names one)
_NOT_A_MENTION = frozenset({"other"})
#: ``rest`` (FAU-Aibo's class) in its everyday senses is no mention: "I need some rest",
#: "the rest of the sentence", "at rest" (taken out of every clause before mentions are read)
_EVERYDAY_REST = re.compile(r"\b(?:some|a|at|to|get|take|the) rest\b|\brest of\b")
#: "label: value" with a score or a yes/no: a list of them is read as a whole
_KEYED_VALUE = r"(?!\w)[\"'\s*]*:[\"'\s*]*(yes|no|true|false|\d*\.?\d+)(?!\w)"


def _prepare(text: str) -> str:
    """NFKC (full-width and mathematical letters: ``ＳＡＤ`` is SAD), without format
    characters (a soft hyphen or zero-width space inside a word) or symbols (``Sad™``:
    NFKC spells ™ as TM)."""
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "So"))
    return unicodedata.normalize("NFKC", text)


def _first_sentence(text: str) -> tuple[str, str] | None:
    r"""The answer's first sentence and the text after it; None when a question mark ends
    it or nothing does. A scan, not a regular expression: ``^\s*(.+?)\s*[.]`` took
    seconds on a long run of spaces (a degenerate output)."""
    text = text.lstrip()  # "\n\nSad." (what an answer_pattern cuts after </think>)
    end = _SENTENCE_END.search(text)
    if end is None or end.group() == "?":
        return None
    return text[: end.start()], text[end.end() :]


def _keyed_answer(text: str, vocab: Sequence[tuple[str, str, bool]]) -> str | None:
    """The answer of a list keyed by labels, None when ``text`` is none: two or more
    ``label: value`` with scores (``sad: 0.2, angry: 0.7``; the top one, if alone) or
    yes/no (``Angry: no`` ... ``Sad: yes``; the one yes); "" when the list names no single
    answer. Its first key was taken as the first sentence: a wrong label. A single key
    denied (``Angry: no``) is "" too: it was that label, the key read as a first sentence."""
    low = _APOSTROPHE.sub("", text.lower())
    values: dict[str, str] = {}
    for word, label, _ in vocab:
        for m in re.finditer(rf"(?<!\w){re.escape(word)}{_KEYED_VALUE}", low):
            values.setdefault(label, m.group(1))
    if len(values) == 1 and next(iter(values.values())) in ("no", "false"):
        return ""
    if len(values) < 2:
        return None
    flags = [v in ("yes", "no", "true", "false") for v in values.values()]
    if all(flags):
        best = [label for label, v in values.items() if v in ("yes", "true")]
    elif any(flags):  # scores and yes/no mixed
        best = []
    else:
        top = max(float(v) for v in values.values())
        best = [label for label, v in values.items() if float(v) == top]
    return best[0] if len(best) == 1 else ""


def _normalise(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def _vocabulary(labels: Mapping[str, Sequence[str]]) -> list[tuple[str, str, bool]]:
    """(normalised word, label, is_label) for labels and synonyms: labels first, then
    longest first (a label's own name beats another label's synonym)."""
    words = []
    for label, synonyms in labels.items():
        words.append((_normalise(_prepare(label)), label, True))
        words += [(w, label, False) for s in synonyms if (w := _normalise(_prepare(s)))]
    return sorted(words, key=lambda w: (not w[2], -len(w[0])))


def label_word_clashes(labels: Mapping[str, Sequence[str]]) -> list[str]:
    """Words (labels or synonyms, normalised) that name two labels: an answer of one of
    them cannot be parsed, and planning refuses them.

    Examples
    --------
    >>> label_word_clashes({"angry": ["mad"], "happy": ["glad", "mad"]})
    ["'mad' names angry and happy"]
    >>> label_word_clashes({"angry": ["angry", "mad"], "sad": []})
    []
    """
    owners: dict[str, list[str]] = {}
    for word, label, _ in _vocabulary(labels):
        if label not in owners.setdefault(word, []):
            owners[word].append(label)
    return [f"{w!r} names {' and '.join(ls)}" for w, ls in owners.items() if len(ls) > 1]


def _named(norm: str, vocab: Sequence[tuple[str, str, bool]]) -> tuple[str, bool] | None:
    """``(label, is_label)`` when the normalised ``norm`` is one word of ``vocab``."""
    return next(((label, is_label) for word, label, is_label in vocab if norm == word), None)


def _mentions(text: str, vocab: Sequence[tuple[str, str, bool]]) -> tuple[set[str], bool]:
    """The labels ``text`` names, and whether a negation governs any of those mentions."""
    mentioned, negated = set(), False
    for clause in _CLAUSE.split(_APOSTROPHE.sub("", text.lower())):
        norm = _EVERYDAY_REST.sub(" ", _normalise(clause))
        for word, label, _ in vocab:
            if word in _NOT_A_MENTION:
                continue
            for m in re.finditer(rf"\b{re.escape(word)}\b", norm):
                mentioned.add(label)
                negated |= _NEGATION.search(norm[: m.start()]) is not None
    return mentioned, negated


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
    >>> parse_answer("Nothing suggests anger; the voice is low and slow, sad.", labels)
    ('', 'unparsed')
    >>> parse_answer("Sad. The voice is low, with no anger.", labels)
    ('sad', 'mention')
    >>> parse_answer("The speaker is sad, no question.", labels)
    ('sad', 'mention')
    >>> parse_answer("I cannot tell.", labels)
    ('', 'unparsed')
    >>> parse_answer("sad: 0.2, angry: 0.7", labels)  # a list keyed by labels: the top one
    ('angry', 'mention')
    >>> parse_answer("Angry: no\\nSad: yes", labels), parse_answer("sad: .5, angry: 0.5", labels)
    (('sad', 'mention'), ('', 'unparsed'))
    >>> parse_answer("Ｓａｄ", labels), parse_answer("The speaker isn‘t sad.", labels)
    (('sad', 'exact'), ('', 'unparsed'))
    """
    if text is None:
        return "", ParseStatus.UNPARSED.value
    text = _prepare(text)
    vocab = _vocabulary(labels)
    whole = _named(_normalise(text), vocab)
    if whole:
        label, is_label = whole
        return label, (ParseStatus.EXACT if is_label else ParseStatus.SYNONYM).value
    keyed = _keyed_answer(text, vocab)  # "sad: 0.2, angry: 0.7" was sad, its first key
    if keyed is not None:
        return keyed, (ParseStatus.MENTION if keyed else ParseStatus.UNPARSED).value
    first = _first_sentence(text)
    if first and (head := _named(_normalise(first[0]), vocab)):
        rest = first[1]
        if _CORRECTION.search(rest.lower()):  # "Neutral. Actually, ... sad." was neutral
            other, negated = _mentions(rest, vocab)
            if other - {head[0]} and not negated:
                return "", ParseStatus.UNPARSED.value
        return head[0], ParseStatus.MENTION.value
    mentioned, negated = _mentions(text, vocab)
    if len(mentioned) == 1 and not negated:
        return mentioned.pop(), ParseStatus.MENTION.value
    return "", ParseStatus.UNPARSED.value


def compile_answer_pattern(pattern: str) -> re.Pattern[str]:
    """A model's ``answer_pattern``, compiled; an error names it when it is not a regex.

    Examples
    --------
    >>> compile_answer_pattern(r"(?s)</think>(.*)").groups
    1
    >>> compile_answer_pattern("(")
    Traceback (most recent call last):
    ...
    ValueError: answer_pattern '(' is not a regular expression: missing ), unterminated subpattern at position 0
    """
    if not pattern:
        raise ValueError("answer_pattern is empty: leave it null to parse the whole output.")
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise ValueError(f"answer_pattern {pattern!r} is not a regular expression: {err}") from None
    if compiled.groups > 1 and "answer" not in compiled.groupindex:
        raise ValueError(
            f"answer_pattern {pattern!r} has {compiled.groups} groups: name the answer's "
            "(?P<answer>...) or keep one group."
        )
    return compiled


def final_answer(text: str, pattern: re.Pattern[str]) -> str | None:
    """The answer in a model's output: the last match of ``pattern``, None when none.

    The match's group ``answer`` if the pattern names one, else its one group, else the
    whole match. Empty matches do not count (``finditer`` ends ``\\w*$`` or ``(?m)^.*$``
    with one at the end of the text).

    Examples
    --------
    >>> pattern = compile_answer_pattern(r"(?s)</think>(.*)")
    >>> final_answer("<think>angry? no, calm: neutral or sad</think> Sad.", pattern)
    ' Sad.'
    >>> final_answer("<think>angry? no, calm", pattern) is None
    True
    >>> final_answer("Angry or sad? Answer: sad. Answer: neutral", re.compile(r"Answer: \\w+"))
    'Answer: neutral'
    >>> final_answer("Angry or sad?\\nsad\\n", re.compile(r"(?m)^.*$"))
    'sad'
    """
    # an empty match is no answer: `\w*$` also matches the empty end of "... sad"
    matches = [m for m in pattern.finditer(text) if m.end() > m.start()]
    if not matches:
        return None
    last = matches[-1]
    if "answer" in pattern.groupindex:
        return last.group("answer")
    return last.group(1) if pattern.groups else last.group(0)


def parse_answers(
    answers: Sequence[str | None],
    labels: Mapping[str, Sequence[str]],
    *,
    answer_pattern: str | None = None,
) -> pd.DataFrame:
    """Vectorised :func:`parse_answer`: a frame with ``pred`` and ``parse_status``.

    ``answer_pattern`` (a model's config key): parse only the answer it picks out of
    each output (:func:`final_answer`); an output it does not match is ``unparsed``.

    Examples
    --------
    >>> labels = {"angry": [], "sad": []}
    >>> out = ["<think>Angry? The voice is low and slow.</think>sad", "<think>Angry? Or"]
    >>> parse_answers(out, labels).values.tolist()  # reasoning read as the answer
    [['', 'unparsed'], ['angry', 'mention']]
    >>> parse_answers(out, labels, answer_pattern=r"(?s)</think>(.*)").values.tolist()
    [['sad', 'exact'], ['', 'unparsed']]
    """
    if not labels:
        raise ValueError("`labels` is empty: the corpus config must name its classes.")
    clashes = label_word_clashes(labels)
    if clashes:
        raise ValueError(f"answer words name two labels: {'; '.join(clashes)}.")
    pattern = None if answer_pattern is None else compile_answer_pattern(answer_pattern)
    cache: dict[str | None, tuple[str, str]] = {}
    rows = []
    for a in answers:
        if a not in cache:
            answer = a if a is None or pattern is None else final_answer(a, pattern)
            if a is not None and answer is None:
                cache[a] = ("", ParseStatus.UNPARSED.value)
            else:
                cache[a] = parse_answer(answer, labels)
        rows.append(cache[a])
    return pd.DataFrame(rows, columns=["pred", "parse_status"])
