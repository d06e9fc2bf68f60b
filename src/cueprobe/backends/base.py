"""The one interface every inference backend implements.

A backend is batch-oriented: it receives a list of :class:`Request` and returns
one raw text answer per request, in order. A request carries ``audio_key`` (the
utterance id) so that a backend may group requests that share the same audio
(the 32 token conditions of one utterance share the whole audio prefix of the
prompt) and prefill that prefix once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol
from typing import runtime_checkable


@dataclasses.dataclass(frozen=True)
class Request:
    """One model call.

    Attributes
    ----------
    utt_id : str
        Utterance id (row key of the predictions table).
    audio_path : str
        Absolute path of the (unchanged) audio file.
    prompt : str
        Full user text: the instruction, plus the token block in token conditions.
    audio_key : str
        Key of the audio; requests with equal keys share the same audio.
    """

    utt_id: str
    audio_path: str
    prompt: str
    audio_key: str


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    """What identifies a backend's answers in the predictions table."""

    model_id: str
    revision: str
    decoding: str  # e.g. "greedy; max_new_tokens=16"


@runtime_checkable
class Backend(Protocol):
    """Anything with ``info`` and ``generate(requests) -> list[str]``."""

    info: BackendInfo

    def generate(self, requests: Sequence[Request]) -> list[str]:
        """Return one raw answer per request, in the order given."""
        ...


def version_mark(version: int) -> str:
    """The ``decoding`` suffix of a backend's code version: none for version 1, whose
    journals were written before it was recorded (their answers stay valid).

    Examples
    --------
    >>> version_mark(1), version_mark(2)
    ('', '; backend v2')
    """
    return f"; backend v{version}" if version > 1 else ""
