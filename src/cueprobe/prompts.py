"""The two prompt formats: audio-only, and the same with the token block added.

Templates come from config ``prompts``: ``{labels}`` becomes the class list
(``angry, happy, neutral, sad``) and ``{tokens}`` the serialised token string.
"""

from __future__ import annotations

import dataclasses
import hashlib
import string
from collections.abc import Sequence

#: how a template writes a brace of its own (a JSON answer format, say)
_LITERAL_BRACES = "a literal brace is written twice: 'Answer as {{\"emotion\": ...}}'."


@dataclasses.dataclass(frozen=True)
class PromptTemplates:
    """Config ``prompts``: optional system text and the two user templates.

    An inference job gets only the template its condition group uses (the audio-only
    job ``audio_only``, the token job ``with_tokens``), so editing the token block re-runs
    only the token jobs (an edit of the question is one to both templates); the other is
    then None and asking for it is an error. Given both, ``with_tokens`` must be
    ``audio_only`` with one token block inserted (:func:`inserted_block`), so that token
    conditions and audio-only differ in the block alone.

    A brace of the text itself (a JSON answer format) is written twice, as in
    :meth:`str.format`: ``'Answer as {{"emotion": ...}}'``. ``system`` None sends no
    system turn, so the chat template adds its default one; an empty ``system`` would
    send an empty turn, another prompt that :func:`prompt_sha` could not tell from
    None's, and is refused.
    """

    audio_only: str | None = None
    with_tokens: str | None = None
    system: str | None = None

    def __post_init__(self) -> None:
        if self.system == "":
            # sent as an empty system turn, which is not what null (the chat template's
            # default system turn) sends, but hashed alike by prompt_sha: the answer
            # journal gave the one setting's answers to the other
            raise ValueError(
                "prompts.system is '': write null to keep the chat template's default system "
                "turn (Qwen2-Audio's and Qwen2.5-Omni's: 'You are a helpful assistant.'), or "
                "the system text to send instead; an empty system turn is not supported."
            )
        for name, text, required in (
            ("audio_only", self.audio_only, {"labels"}),
            ("with_tokens", self.with_tokens, {"labels", "tokens"}),
        ):
            if text is None:
                continue
            try:
                fields = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            except ValueError as err:  # a lone brace: str.format's message names no template
                raise ValueError(
                    f"prompts.{name} is not a valid template ({err}): {_LITERAL_BRACES}"
                ) from None
            if fields != required:
                hint = f" {_LITERAL_BRACES}" if fields - required else ""
                raise ValueError(
                    f"prompts.{name} must use exactly the fields {sorted(required)}, "
                    f"it uses {sorted(fields)}.{hint}"
                )
        if self.audio_only is not None and self.with_tokens is not None:
            # a token condition vs audio_only must differ by the token block only, or every
            # comparison with audio_only (Delta, the format prior) also measures the wording
            if inserted_block(self.audio_only, self.with_tokens) is None:
                raise ValueError(
                    "prompts.with_tokens must be prompts.audio_only with one token block "
                    f"inserted (before, inside or after it); {self.with_tokens!r} is not "
                    f"{self.audio_only!r} with one insertion holding {{tokens}}."
                )


def inserted_block(audio_only: str, with_tokens: str) -> str | None:
    r"""The text ``with_tokens`` inserts at one place of ``audio_only``, if it holds
    ``{tokens}`` (once) and not ``{labels}``; None when the two differ otherwise.

    Examples
    --------
    >>> inserted_block("Pick: {labels}.", "Pick: {labels}.\nCues: {tokens}")
    '\nCues: {tokens}'
    >>> inserted_block("Q? Pick: {labels}.", "Q? Cues: {tokens}. Pick: {labels}.")
    ' Cues: {tokens}.'
    >>> inserted_block("Pick: {labels}.", "Be careful. Pick: {labels}.\nCues: {tokens}") is None
    True
    >>> inserted_block("A{labels}", "A{tokens}{labels}")
    '{tokens}'
    """
    extra = len(with_tokens) - len(audio_only)
    for i in range(len(audio_only) + 1):  # every place the block could be inserted
        head, tail = audio_only[:i], audio_only[i:]
        if extra > 0 and with_tokens.startswith(head) and with_tokens.endswith(tail):
            block = with_tokens[i : i + extra]
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(block) if f is not None]
            except ValueError:  # the cut splits a brace pair: another place may fit
                continue
            if fields == ["tokens"]:
                return block
    return None


def build_prompt(
    templates: PromptTemplates, *, labels: Sequence[str], token_string: str | None
) -> str:
    """The user text of one request; ``token_string=None`` gives the audio-only format.

    Examples
    --------
    >>> t = PromptTemplates("Pick one of: {labels}.", "Pick one of: {labels}.\\nCues: {tokens}")
    >>> build_prompt(t, labels=["sad", "happy"], token_string=None)
    'Pick one of: sad, happy.'
    >>> build_prompt(t, labels=["sad", "happy"], token_string="ENERGY=LOW")
    'Pick one of: sad, happy.\\nCues: ENERGY=LOW'
    """
    label_list = ", ".join(labels)
    name = "audio_only" if token_string is None else "with_tokens"
    template = getattr(templates, name)
    if template is None:
        raise ValueError(
            f"a {name.replace('_', ' ')} prompt was asked for, but prompts.{name} is not given."
        )
    return template.format(labels=label_list, tokens=token_string)


def prompt_sha(templates: PromptTemplates, prompt: str) -> str:
    """Short SHA-256 of system text + prompt: identifies exactly what the model read."""
    h = hashlib.sha256()
    h.update((templates.system or "").encode())
    h.update(b"\0")
    h.update(prompt.encode())
    return h.hexdigest()[:16]
