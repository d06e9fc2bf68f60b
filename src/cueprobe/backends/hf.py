"""The ``transformers`` backend: audio language models run in-process, greedy and batched.

Supported architectures (the ``architecture`` key of a model in the config):

``qwen2_audio``
    ``Qwen2AudioForConditionalGeneration`` + ``AutoProcessor``
    (``Qwen/Qwen2-Audio-7B-Instruct``).
``qwen2_5_omni``
    ``Qwen2_5OmniThinkerForConditionalGeneration`` + ``Qwen2_5OmniProcessor``
    (``Qwen/Qwen2.5-Omni-7B``). Only the thinker (text output) is loaded: the full
    ``Qwen2_5OmniForConditionalGeneration`` also loads the talker and fails text-only
    ``generate`` in transformers 5.23.
``audio_flamingo_3``
    ``AudioFlamingo3ForConditionalGeneration`` + ``AutoProcessor``
    (``nvidia/audio-flamingo-3-hf``); optional PEFT adapter (e.g. the "think" LoRA).
``midashenglm``
    ``AutoModelForCausalLM`` + ``AutoProcessor`` from the checkpoint's own remote code
    (``mispeech/midashenglm-7b``). Runs only with ``trust_remote_code: true`` in the model's
    config entry. Remote code cannot be exercised offline, so beyond the refusal without
    ``trust_remote_code`` this path is untested here.

How every request is run
------------------------
The conversation is ``[system?, user: [audio part, text part]]`` rendered with the
processor's own chat template, the audio is read with ``soundfile`` (mono, float32,
resampled to the feature extractor's rate) and passed with the ``audio=`` keyword
(the older ``audios=`` was silently ignored by some transformers versions: the model then
never hears the audio). The tokenizer pads on the left so that batched greedy decoding
gives the same answers as one request at a time. Decoding is greedy (``do_sample=False``,
whatever the checkpoint's generation config says) and only the new tokens are decoded.

Requests that share an audio file (the token conditions of one utterance: ``audio_key``)
share everything up to their token block: system turn, audio placeholders, question.
That prefix is prefilled once, audio encoder included, and each request's own suffix is
decoded from a copy of its KV cache (:meth:`TransformersBackend.generate`). In float32
the logits agree with one request at a time to ~1e-7 (tested for every architecture); in
bfloat16, as with batching, an answer can now and then flip.

A batch that fails (a file unreadable since the manifest was built, a clip too short to
give the model :data:`MIN_AUDIO_TOKENS` audio tokens, CUDA out of memory on one long
batch) is answered again one request at a time; a request that fails alone is an error
answer (``None``: ``parse_status == "error"`` downstream, asked again when the job runs again, e.g. `--forcerun query_token_conditions`)
with a warning naming its file, so that one bad file does not stop the job on every run.
:data:`FAILED_FILES_IN_ROW` files in a row failing alone is a fault of the set-up, not of
the files: the job stops with the last error.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cueprobe.audio import load_audio
from cueprobe.backends.base import BackendInfo
from cueprobe.backends.base import Request
from cueprobe.backends.base import version_mark
from cueprobe.config import local_digest

log = logging.getLogger(__name__)

#: fewer audio placeholder tokens than this (clips under ~40-80 ms) and the model hears
#: nothing: Qwen2.5-Omni and AF3 answer from the text alone, Qwen2-Audio's forward takes
#: the prompt for its old unexpanded format and fails
MIN_AUDIO_TOKENS = 2
#: files in a row on whose prepared inputs the model failed alone: the set-up is at fault
FAILED_FILES_IN_ROW = 5
#: bump it when a change here changes what a model answers (decoding, stop tokens, prompt
#: rendering, how the audio is passed): part of :func:`load_setup` (a job loads the model
#: again) and, from 2 on, of the header's ``decoding`` (the journal's answers of the old
#: code are not reused: :func:`cueprobe.backends.base.version_mark`)
BACKEND_VERSION = 1


class AudioTooShortError(ValueError):
    """A clip gives the model fewer than :data:`MIN_AUDIO_TOKENS` audio tokens."""


__all__ = [
    "ARCHITECTURES",
    "TransformersBackend",
    "common_prefix_length",
    "default_device",
    "end_of_turn_ids",
    "load_audio",
    "load_setup",
    "new_tokens",
]

_DTYPES = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}


@dataclasses.dataclass(frozen=True)
class _Architecture:
    """How to load one architecture: class names looked up in ``transformers``."""

    model_class: str
    processor_class: str
    remote_code: bool = False
    processor_pads: bool = True  # False: the processor pads itself and breaks on padding=True
    # False: the processor passes its own sampling_rate to the feature extractor, so one
    # from the caller (routed there too) is a duplicate keyword (MiDashengLM's remote code)
    processor_takes_rate: bool = True
    # True: audio past the feature extractor's window is cut, not split into windows
    # (Qwen2-Audio pads and truncates to 30 s, Qwen2.5-Omni to 300 s; AF3 splits)
    truncates_audio: bool = False
    shares_prefix: bool = True  # prefill an utterance's common prompt prefix once (tested)
    # True: the processor pads every clip to the feature extractor's whole window and the
    # model keeps only the frames its feature mask marks valid (Qwen2.5-Omni: 300 s, 0.5 s
    # of CPU and 15 MB of features per clip); the batch is padded to its longest clip
    # instead (see HFBackend.prepare)
    pads_to_window: bool = False
    # the processor's key for the raw waveform, kept in float32 (not cast to the model's
    # dtype): MiDashengLM's front end computes its mel features from it in float32, and a
    # bfloat16 copy first rounds the samples to ~56 dB SNR
    waveform_key: str | None = None
    # True: the processor expands the audio placeholder into one token per audio frame
    # (checked on the tiny models), so a clip giving fewer than MIN_AUDIO_TOKENS is one
    # the model cannot hear; unverified for MiDashengLM's remote processor, so not checked
    expands_audio_tokens: bool = True


ARCHITECTURES: dict[str, _Architecture] = {
    "qwen2_audio": _Architecture(
        "Qwen2AudioForConditionalGeneration", "AutoProcessor", truncates_audio=True
    ),
    "qwen2_5_omni": _Architecture(
        "Qwen2_5OmniThinkerForConditionalGeneration",
        "Qwen2_5OmniProcessor",
        truncates_audio=True,
        pads_to_window=True,
    ),
    "audio_flamingo_3": _Architecture(
        "AudioFlamingo3ForConditionalGeneration", "AutoProcessor", processor_pads=False
    ),
    "midashenglm": _Architecture(
        "AutoModelForCausalLM",
        "AutoProcessor",
        remote_code=True,
        shares_prefix=False,
        processor_takes_rate=False,
        waveform_key="input_values",
        expands_audio_tokens=False,
    ),
}


#: the chat models' end-of-turn and end-of-text tokens, where a tokenizer has them
END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>")


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """Stop tokens for a checkpoint whose generation config names none: the tokenizer's
    EOS and whichever of :data:`END_OF_TURN_TOKENS` its vocabulary holds."""
    vocab = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id] + [vocab.get(t) for t in END_OF_TURN_TOKENS]
    return list(dict.fromkeys(i for i in ids if i is not None))


def new_tokens(sequences: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Keep only the generated part of ``generate``'s output.

    Most models return prompt + continuation; some remote-code models return the
    continuation only. The prompt is cut when the output starts with it.

    Parameters
    ----------
    sequences : torch.Tensor
        ``(batch, length)`` output of ``generate``.
    input_ids : torch.Tensor
        ``(batch, prompt_length)`` (left-padded) prompt ids.

    Returns
    -------
    torch.Tensor
        ``(batch, new_length)`` generated ids.
    """
    n = input_ids.shape[1]
    if sequences.shape[1] >= n and torch.equal(sequences[:, :n].to(input_ids.device), input_ids):
        return sequences[:, n:]
    return sequences


class TransformersBackend:
    """Greedy, batched inference with a Hugging Face audio language model.

    Parameters
    ----------
    model_id : str
        Hub id or local folder of the checkpoint.
    architecture : str
        One of :data:`ARCHITECTURES`.
    revision : str
        Hub revision (commit hash, branch or tag). ``info.revision`` records it with the
        commit it resolved to, ``main@<sha>`` (see :func:`resolved_revision`).
    dtype : str, default: "auto"
        ``"bfloat16"``, ``"float16"``, ``"float32"``, or ``"auto"``: the checkpoint's dtype
        on a GPU, float32 on the CPU (bfloat16 on most CPUs is slow, and batched logits then
        drift from one-at-a-time ones). ``info.decoding`` records the dtype the model got.
    batch_size : int
        Requests per forward pass.
    max_new_tokens : int
        Generation length cap.
    trust_remote_code : bool
        Allow the checkpoint's own Python code; required by ``midashenglm``.
    adapter : str or None
        PEFT adapter (hub id or folder) applied on top of the model.
    adapter_subfolder : str or None
        Folder of the adapter inside ``adapter`` (e.g. an adapter shipped in a subfolder
        of the model's own repository).
    adapter_revision : str or None
        Pinned revision of ``adapter``; ``None`` means ``revision`` when the adapter lives
        in the model's own repository (``adapter == model_id``), else ``"main"``. Recorded
        in ``info.decoding``, so answers of another adapter revision are not reused.
    system_prompt : str or None
        System turn; ``None`` leaves the chat template's default, ``""`` sends an empty
        one (config ``prompts.system`` refuses it: :class:`cueprobe.prompts.PromptTemplates`).
    device : str or None
        Torch device; ``None`` picks ``"cuda"`` when available, else ``"cpu"``.
    share_prefix : bool, default: True
        Prefill the common prompt prefix of requests on one audio file once (see the
        module docstring); not for ``midashenglm``, whose remote code is untested here.

    Raises
    ------
    ValueError
        On an unknown architecture, dtype, or a batch size or token cap below 1, and for
        ``midashenglm`` without ``trust_remote_code``.
    """

    def __init__(
        self,
        model_id: str,
        *,
        architecture: str,
        revision: str = "main",
        dtype: str = "auto",
        batch_size: int = 8,
        max_new_tokens: int = 16,
        trust_remote_code: bool = False,
        adapter: str | None = None,
        adapter_subfolder: str | None = None,
        adapter_revision: str | None = None,
        system_prompt: str | None = None,
        device: str | None = None,
        share_prefix: bool = True,
    ) -> None:
        if architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {architecture!r}; expected one of {sorted(ARCHITECTURES)}"
            )
        if dtype != "auto" and dtype not in _DTYPES:
            raise ValueError(
                f"unknown dtype {dtype!r}; expected 'auto' or one of {sorted(_DTYPES)}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        arch = ARCHITECTURES[architecture]
        if arch.remote_code and not trust_remote_code:
            raise ValueError(
                f"{model_id} ({architecture}) runs the checkpoint's own Python code; set "
                "`trust_remote_code: true` in its model config entry to allow it"
            )
        self.architecture = architecture
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.system_prompt = system_prompt
        self.device = device or default_device()
        self._pads = arch.processor_pads
        self._takes_rate = arch.processor_takes_rate
        self._truncates = arch.truncates_audio
        self._pads_to_window = arch.pads_to_window
        self._waveform_key = arch.waveform_key
        self._counts_audio_tokens = arch.expands_audio_tokens
        self._cut_files: set[str] = set()  # files logged as longer than the audio window
        # one commit for the processor, the model, an adapter in the model's own repository
        # and the record (main moves; a download can span an update); the string is still
        # `revision` for messages, URLs and the decoding's adapter@revision
        try:
            # computed before loading: a job whose every request is in the answer journal
            # under this set-up does not load the model (see :func:`load_setup`)
            self.setup, pinned, adapter_revision = _setup(
                model_id, architecture=architecture, revision=revision, dtype=dtype,
                max_new_tokens=max_new_tokens, trust_remote_code=trust_remote_code,
                adapter=adapter, adapter_subfolder=adapter_subfolder,
                adapter_revision=adapter_revision, device=self.device,
            )  # fmt: skip
            dtype = self.setup["dtype"]
            self.processor = self._load_processor(arch, model_id, pinned, trust_remote_code)
            self.model = self._load_model(
                arch, model_id, pinned, dtype, trust_remote_code,
                (adapter, adapter_subfolder, adapter_revision),
            )  # fmt: skip
        except (OSError, ValueError) as err:  # transformers' and PEFT's name no repository
            kind = OSError if isinstance(err, OSError) else ValueError  # the caller's type
            raise kind(_load_hint(model_id, revision, adapter, err)) from err
        got = str(self.model.dtype).removeprefix("torch.")
        # stop tokens filled in by _greedy_config are part of the decoding (and so of the
        # answer journal's header: answers that ran past the end of turn are not reused)
        self.generation_config = self._greedy_config()
        stop = ""
        if self.model.generation_config.eos_token_id is None:
            stop = f"; stop={self.generation_config.eos_token_id}"
        # generate() fills every None of the config it is given from the model's own (the
        # checkpoint's suppress_tokens, bad_words_ids...): the model's is the greedy one too
        self.model.generation_config = copy.deepcopy(self.generation_config)
        # a local folder has no commit: its files' digest stands for one, so answers of a
        # checkpoint replaced in place are not reused
        commit = self.setup["commit"]
        if commit is None and self.setup["model_files"] is not None:
            commit = f"local-{self.setup['model_files']}"
        adapter_record = adapter_revision
        if adapter and adapter != model_id and self.setup["adapter_files"] is not None:
            adapter_record = f"{adapter_revision}@local-{self.setup['adapter_files']}"
        self.info = BackendInfo(
            model_id=model_id,
            revision=revision if commit in (None, revision) else f"{revision}@{commit}",
            decoding=f"greedy; max_new_tokens={max_new_tokens}; dtype={got}{stop}"
            + (f"; adapter={adapter}" if adapter else "")
            + (f"/{adapter_subfolder}" if adapter and adapter_subfolder else "")
            + (f"@{adapter_record}" if adapter else "")
            + version_mark(BACKEND_VERSION),
        )
        self.sampling_rate = int(self.processor.feature_extractor.sampling_rate)
        self._audio_token_id = _audio_token_id(self.processor)
        self._failed_files: set[str] = set()  # files the model failed on alone
        self._failed_in_row = 0  # such files in a row (FAILED_FILES_IN_ROW)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        self._keeps_logits = "logits_to_keep" in inspect.signature(base.forward).parameters
        # a prompt-learning PEFT adapter (prefix/prompt tuning) adds virtual tokens that a
        # cache made without them would misalign; LoRA adapters share the prefix (tested)
        peft_config = getattr(self.model, "active_peft_config", None)
        self.share_prefix = (
            share_prefix
            and arch.shares_prefix
            and self._audio_token_id is not None
            and not getattr(peft_config, "is_prompt_learning", False)
        )

    # -- loading ---------------------------------------------------------------------------

    def _load_processor(
        self, arch: _Architecture, model_id: str, revision: str, trust_remote_code: bool
    ) -> Any:
        import transformers

        cls = getattr(transformers, arch.processor_class)
        processor = cls.from_pretrained(
            model_id, revision=revision, trust_remote_code=trust_remote_code
        )
        processor.tokenizer.padding_side = "left"
        if processor.tokenizer.pad_token is None:
            processor.tokenizer.pad_token = processor.tokenizer.eos_token
        return processor

    def _load_model(
        self,
        arch: _Architecture,
        model_id: str,
        revision: str,
        dtype: str,
        trust_remote_code: bool,
        adapter: tuple[str | None, str | None, str | None],
    ) -> Any:
        import transformers

        cls = getattr(transformers, arch.model_class)
        model = cls.from_pretrained(
            model_id,
            revision=revision,
            dtype=_DTYPES.get(dtype, "auto"),
            trust_remote_code=trust_remote_code,
            device_map=self.device,  # load straight onto the device
        )
        name, subfolder, adapter_revision = adapter
        if name is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(
                model, name, subfolder=subfolder, revision=adapter_revision
            )
        return model.to(self.device).eval()

    def _greedy_config(self) -> Any:
        """The checkpoint's generation config, forced to greedy decoding."""
        config = copy.deepcopy(self.model.generation_config)
        config.do_sample = False
        config.num_beams = 1
        # neutral values rather than None: None would be refilled from the checkpoint
        # (AF3 ships temperature/top_p/top_k for sampling) and warn under greedy decoding
        config.temperature = 1.0
        config.top_p = 1.0
        config.top_k = 50
        config.max_new_tokens = self.max_new_tokens
        # plain argmax: a repetition penalty would also count the pad tokens of a batch
        # (EOS for the Qwen models), so a padded row would answer unlike the same row alone
        config.repetition_penalty = 1.0
        # nor any other logits processor a checkpoint may ship: n-gram bans and token
        # suppression change the argmax, a minimum length keeps a one-word answer going
        config.encoder_repetition_penalty = 1.0
        config.no_repeat_ngram_size = 0
        config.encoder_no_repeat_ngram_size = 0
        config.bad_words_ids = None
        config.suppress_tokens = None
        config.begin_suppress_tokens = None
        config.min_new_tokens = None
        config.min_length = 0
        # the shared prefix hands generate its own DynamicCache: a checkpoint's cache
        # choice would be refused with it, and use_cache=False would re-run the suffix
        # without the prefix's cache from the second token on
        config.use_cache = True
        config.cache_implementation = None
        tokenizer = self.processor.tokenizer
        if config.eos_token_id is None:
            # the published Qwen2.5-Omni-7B generation config names no stop token (it is in
            # config.json only, which generate does not read): every answer ran on past
            # <|im_end|> for max_new_tokens ("sad\nuser\n..." names several labels)
            config.eos_token_id = end_of_turn_ids(tokenizer)
        if config.pad_token_id is None:
            config.pad_token_id = tokenizer.pad_token_id
        return config

    # -- inference -------------------------------------------------------------------------

    def conversation(self, prompt: str, audio_path: str) -> list[dict[str, Any]]:
        """The chat for one request: optional system turn, then audio + text from the user."""
        messages: list[dict[str, Any]] = []
        if self.system_prompt is not None:
            messages.append(
                {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]}
            )
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "audio", "audio": audio_path},
                    {"type": "text", "text": prompt},
                ],
            }
        )
        return messages

    def chat_text(self, request: Request) -> str:
        """The request's conversation rendered by the processor's chat template."""
        return self.processor.apply_chat_template(
            self.conversation(request.prompt, request.audio_path),
            tokenize=False,
            add_generation_prompt=True,
        )

    def prepare(self, requests: Sequence[Request]) -> Any:
        """Processor outputs (on the model's device) for one batch of requests."""
        texts = [self.chat_text(r) for r in requests]
        # a batch holds several conditions of one utterance (requests come utterance-major):
        # decode and resample each file once
        loaded = {
            path: load_audio(path, self.sampling_rate)
            for path in dict.fromkeys(r.audio_path for r in requests)
        }
        audio = [loaded[r.audio_path] for r in requests]
        window = getattr(self.processor.feature_extractor, "n_samples", None)
        if self._truncates and window:
            for path, samples in loaded.items():
                if len(samples) > window and path not in self._cut_files:
                    self._cut_files.add(path)
                    log.warning(
                        "%s: %.1f s of audio; the model hears its first %.0f s (its window)",
                        path, len(samples) / self.sampling_rate, window / self.sampling_rate,
                    )  # fmt: skip
        kwargs: dict[str, Any] = {"return_tensors": "pt"}
        if self._takes_rate:  # the audio is resampled to it by load_audio either way
            kwargs["sampling_rate"] = self.sampling_rate
        if self._pads:
            kwargs["padding"] = True
        if self._pads_to_window and window:
            # the batch's longest clip and one FFT window of zeros, so that every frame
            # over real audio sees what it saw padded to the whole window: the same valid
            # features and answers (tested; bit-identical here except in batches under
            # ~0.1 s, where the mel matmul over few frames can round 1 ulp differently)
            fft = int(getattr(self.processor.feature_extractor, "n_fft", 0))
            longest = max(len(a) for a in audio) + fft
            kwargs["audio_kwargs"] = {"max_length": min(window, longest)}
        inputs = self.processor(text=texts, audio=audio, **kwargs)
        inputs.pop("num_audio_tokens", None)
        if self._counts_audio_tokens and self._audio_token_id is not None:
            heard = (inputs["input_ids"] == self._audio_token_id).sum(dim=1).tolist()
            for r, n in zip(requests, heard, strict=True):
                if n < MIN_AUDIO_TOKENS:
                    seconds = len(loaded[r.audio_path]) / self.sampling_rate
                    raise AudioTooShortError(
                        f"{seconds:.3f} s of audio gives the model {n} audio token(s) "
                        f"(fewer than {MIN_AUDIO_TOKENS}): it would answer from the text alone"
                    )
        dtype = self.model.dtype
        return {
            k: (
                v.to(self.device, dtype)
                if v.is_floating_point() and k != self._waveform_key
                else v.to(self.device)
            )
            if isinstance(v, torch.Tensor)
            else v
            for k, v in inputs.items()
        }

    def _decode(self, sequences: Any, input_ids: torch.Tensor) -> list[str]:
        if not isinstance(sequences, torch.Tensor):  # a ModelOutput
            sequences = sequences.sequences
        out = new_tokens(sequences, input_ids)
        return [
            t.strip() for t in self.processor.tokenizer.batch_decode(out, skip_special_tokens=True)
        ]

    def _generate_batch(self, requests: Sequence[Request]) -> list[str]:
        return self._answer(self.prepare(requests))

    def _answer(self, inputs: Any) -> list[str]:
        """Greedy answers to prepared inputs (:meth:`prepare`)."""
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, generation_config=self.generation_config)
        return self._decode(sequences, inputs["input_ids"])

    def _generate_shared(self, requests: Sequence[Request]) -> list[str] | None:
        """Answer requests on one audio file, prefilling their common prefix once.

        The prefix (every token up to the first one where two prompts differ, audio
        placeholders included) runs through the model once with the audio features; each
        request's suffix is padded on its left, after the prefix, and decoded from a copy of
        the prefix's KV cache, ``batch_size`` requests at a time. Position ids follow the
        attention mask, so the padding between prefix and suffix is skipped as left padding
        is. Returns None, and the caller runs the requests as usual, when a prompt has audio
        placeholders after the common prefix.
        """
        first = self.prepare(requests[:1])  # the audio's features, once
        rows = self._token_rows(requests, first["input_ids"][0])
        n = common_prefix_length(rows)
        audio = self._audio_token_id
        if not (rows[0][:n] == audio).any() or any((r[n:] == audio).any() for r in rows):
            return None
        prefix = dict(first)
        prefix["input_ids"] = first["input_ids"][:, :n]
        prefix["attention_mask"] = first["attention_mask"][:, :n]
        if self._keeps_logits:  # the prefix's logits are never read: keep the last only
            prefix["logits_to_keep"] = 1
        with torch.inference_mode():
            cache = self.model(**prefix, use_cache=True).past_key_values
        pad = self.processor.tokenizer.pad_token_id
        answers: list[str] = []
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            width = max(len(r) for r in chunk)  # prefix, left padding, suffix
            input_ids = rows[0].new_full((len(chunk), width), pad)
            attention = torch.zeros_like(input_ids)
            input_ids[:, :n] = rows[0][:n]
            attention[:, :n] = 1
            for i, row in enumerate(chunk):
                input_ids[i, width - (len(row) - n) :] = row[n:]
                attention[i, width - (len(row) - n) :] = 1
            with torch.inference_mode():
                past = copy.deepcopy(cache)  # generate extends the cache it is given
                past.batch_repeat_interleave(len(chunk))
                sequences = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    past_key_values=past,
                    generation_config=self.generation_config,
                )
            answers.extend(self._decode(sequences, input_ids))
        return answers

    def _token_rows(self, requests: Sequence[Request], first: torch.Tensor) -> list[torch.Tensor]:
        """The processor's token ids of each request (no padding), on the model's device.

        Requests share one audio file, so each prompt's ids are its text tokenized with the
        audio placeholder expanded to the first request's run of placeholders: the audio's
        features are computed once, not once per request. Checked on the first request
        against the processor; where they differ, every request goes through the processor.
        """
        audio = self._audio_token_id
        run = int((first == audio).sum())
        rows = []
        for r in requests:
            ids = self.processor.tokenizer(self.chat_text(r), return_tensors="pt")["input_ids"][0]
            at = (ids == audio).nonzero()
            if len(at) != 1:
                break
            i = int(at[0, 0])
            rows.append(torch.cat([ids[:i], ids[i : i + 1].repeat(run), ids[i + 1 :]]))
        if len(rows) == len(requests) and torch.equal(rows[0], first.cpu()):
            return [row.to(first.device) for row in rows]
        inputs = self.prepare(requests)
        mask = inputs["attention_mask"].bool()
        return [inputs["input_ids"][i][mask[i]] for i in range(len(requests))]

    def generate(self, requests: Sequence[Request]) -> list[str | None]:
        """Answer each request; results come back in the order given.

        Requests on one audio file (same ``audio_key`` and path), at least two and half a
        batch of them, share their prompt prefix (:meth:`_generate_shared`, when
        ``share_prefix``). The others are sorted by prompt length (less padding per batch)
        and run ``batch_size`` at a time. A batch that fails is run again one request at a
        time, and a request that fails alone is None (module docstring).

        Parameters
        ----------
        requests : Sequence[Request]
            The calls to make.

        Returns
        -------
        list of str or None
            One stripped raw answer per request; None where the model failed on it.
        """
        answers: list[str | None] = [None] * len(requests)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.audio_key, r.audio_path), []).append(i)
        alone: list[int] = []
        for idx in groups.values():
            shared = None
            # a group shares its prefix when it fills at least half a batch: its suffixes
            # then decode in at most twice the generate calls they would take mixed with
            # other files' requests, while its prefill shrinks by the group's size
            if self.share_prefix and len(idx) > 1 and 2 * len(idx) >= self.batch_size:
                try:
                    shared = self._generate_shared([requests[i] for i in idx])
                except Exception as err:  # noqa: BLE001 - run as usual, and alone if it fails
                    _release(err)
            if shared is None:
                alone.extend(idx)
                continue
            self._failed_in_row = 0
            for i, text in zip(idx, shared, strict=True):
                answers[i] = text
        order = sorted(alone, key=lambda i: len(requests[i].prompt))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            try:
                texts = self._generate_batch([requests[i] for i in idx])
            except Exception as err:  # noqa: BLE001 - each request again, alone
                _release(err)
                for i in idx:
                    answers[i] = self._generate_alone(requests[i])
                continue
            self._failed_in_row = 0
            for i, text in zip(idx, texts, strict=True):
                answers[i] = text
        return answers

    def _generate_alone(self, request: Request) -> str | None:
        """One request on its own; None (with a warning, once per file) if it fails.

        A file that cannot be read or is too short fails in :meth:`prepare`: the file's
        own fault. Only the model failing on prepared inputs counts towards
        :data:`FAILED_FILES_IN_ROW` (five short clips side by side are not a broken set-up).
        """
        if request.audio_path in self._failed_files:  # this file failed alone before
            return None
        try:
            inputs = self.prepare([request])
        except Exception as err:  # noqa: BLE001 - the file's fault: an error answer
            return self._failed(request, err, model_fault=False)
        try:
            (text,) = self._answer(inputs)
        except Exception as err:  # noqa: BLE001 - an error answer, asked again on a re-run
            _release(err)
            return self._failed(request, err, model_fault=True)
        self._failed_in_row = 0
        return text

    def _failed(self, request: Request, err: Exception, *, model_fault: bool) -> None:
        self._failed_files.add(request.audio_path)
        if model_fault:
            self._failed_in_row += 1
            if self._failed_in_row >= FAILED_FILES_IN_ROW:
                raise RuntimeError(
                    f"the model failed on {self._failed_in_row} files in a row, the last "
                    f"{request.audio_path} ({type(err).__name__}: {err}): a fault of the set-up, "
                    "not of the files; the answers of earlier batches are in the journal"
                ) from err
        log.warning(
            "%s: %s (%s: %s); its rows are parse status `error` (wrong), asked again on a "
            "forced re-run of the job",
            request.audio_path,
            "the model failed on it" if model_fault else "cannot be put to the model",
            type(err).__name__,
            str(err)[:300],
        )
        return None


def _release(err: BaseException) -> None:
    """After a failed batch: give its memory back to the GPU if it ran out."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        torch.cuda.empty_cache()


def common_prefix_length(rows: Sequence[torch.Tensor]) -> int:
    """Length of the token prefix all rows share, leaving each row at least one token.

    Examples
    --------
    >>> common_prefix_length([torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 5])])
    2
    >>> common_prefix_length([torch.tensor([1, 2]), torch.tensor([1, 2])])
    1
    """
    n = min(len(r) for r in rows) - 1
    for other in rows[1:]:
        differs = (rows[0][:n] != other[:n]).nonzero()
        if len(differs):
            n = int(differs[0, 0])
    return max(n, 0)


def _load_hint(model_id: str, revision: str, adapter: str | None, err: Exception | str) -> str:
    """What to do when a checkpoint does not load: where it was looked for, how to get it.

    A compute node without internet, or ``HF_HUB_OFFLINE=1``, reads the hub cache only;
    transformers' message ("couldn't connect to 'https://huggingface.co'") names neither
    the repository nor the cache.
    """
    from huggingface_hub import constants

    what = f"{model_id}@{revision}" + (f" (adapter {adapter})" if adapter else "")
    not_found = isinstance(err, OSError)  # `models/ckpt` from another folder, say
    err = " ".join(str(err).split())  # one line: a job log's last line is what is read
    if Path(model_id).is_dir():
        return f"{what}: cannot load the local checkpoint folder: {err}"
    downloads = f"`hf download {model_id} --revision {revision}`"
    if adapter and adapter != model_id and not Path(adapter).is_dir():
        downloads += f" and `hf download {adapter}`"
    return (
        f"{what}: cannot load the checkpoint ({err}). Without internet, or with "
        f"HF_HUB_OFFLINE=1 ({'set' if constants.HF_HUB_OFFLINE else 'not set'} here), only "
        f"the hub cache {constants.HF_HUB_CACHE} is read: download it once where there is "
        f"internet, {downloads}, into the HF_HOME the jobs see (README, GPU models)"
        + (
            f". A local checkpoint folder? It is not in {Path.cwd()}, which relative paths "
            "are read from: write its full path"
            if "/" in model_id and not_found
            else ""
        )
    )


def default_device() -> str:
    """``"cuda"`` when torch can use a GPU, else ``"cpu"``; an error where GPUs were given
    to the job (in a SLURM job ``SLURM_JOB_GPUS``, set for ``--gpus``; elsewhere
    ``CUDA_VISIBLE_DEVICES``) but torch cannot use them.

    A torch build for a newer CUDA than the node's driver supports (the lock's is CUDA
    13.0, driver >= 580) sees no GPU: the job ran a 7B model on 4 CPUs until its time
    limit, silently. ``CUDA_VISIBLE_DEVICES=""`` (or ``-1``) asks for the CPU.

    On a workstation with several GPUs the job first claims a free one
    (:func:`cueprobe.backends.gpus.claim_gpu`), before torch starts CUDA: every job ran
    on card 0.
    """
    from cueprobe.backends.gpus import claim_gpu

    claim_gpu()
    if torch.cuda.is_available():
        return "cuda"
    if "SLURM_JOB_ID" in os.environ:  # what SLURM allocated (CUDA_VISIBLE_DEVICES may be
        # inherited from the shell that submitted a CPU job)
        name = "SLURM_JOB_GPUS"
        given = os.environ.get("SLURM_JOB_GPUS") or os.environ.get("SLURM_STEP_GPUS") or ""
    else:
        name = "CUDA_VISIBLE_DEVICES"
        given = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    given = given.strip()
    if given and given not in ("-1", "NoDevFiles"):
        build = (
            f"it is built for CUDA {torch.version.cuda}, which needs an NVIDIA driver that "
            "supports it (nvidia-smi shows the CUDA version the driver supports)"
            if torch.version.cuda
            else "it is a CPU-only build"
        )
        raise RuntimeError(
            f"the job was given GPU(s) ({name}={given}) but torch {torch.__version__} cannot "
            f"use them: {build}. Install a torch build for your driver in the job's "
            "environment, or give the model `resources: {gpu: 0}` and run it where no GPU is "
            "given (outside SLURM: CUDA_VISIBLE_DEVICES='')"
        )
    log.info("no CUDA device: the model runs on the CPU")
    return "cpu"


def load_setup(model_id: str, **kwargs: Any) -> dict[str, Any]:
    """What a :class:`TransformersBackend` of these arguments is loaded from, without
    loading it: its ``setup``, which the answer journal records beside the header.

    The backend's ``info`` (the journal header: the commit, the dtype the model got, the
    stop tokens of its generation config) is a function of these: the arguments, the
    commit the revision resolves to, the local folders' file digests, the device type and
    the transformers (and PEFT) versions. A job whose every request the journal answered
    under this set-up takes the header from there and does not load the model: a re-run
    that asks nothing (a re-parse, a param change) costs no 7B load and no weights on the
    node. Keyword arguments as :class:`TransformersBackend`'s (``architecture``,
    ``revision``, ``dtype``, ``max_new_tokens``, ``trust_remote_code``, ``adapter``,
    ``adapter_subfolder``, ``adapter_revision``, ``device``).
    """
    return _setup(model_id, **kwargs)[0]


def _setup(
    model_id: str,
    *,
    architecture: str,
    revision: str = "main",
    dtype: str = "auto",
    max_new_tokens: int = 16,
    trust_remote_code: bool = False,
    adapter: str | None = None,
    adapter_subfolder: str | None = None,
    adapter_revision: str | None = None,
    device: str | None = None,
) -> tuple[dict[str, Any], str, str | None]:
    """:func:`load_setup`, and the pinned revisions the model and the adapter are loaded at
    (``str`` subclasses that carry the commit for ``from_pretrained``)."""
    import transformers

    device_type = torch.device(device or default_device()).type
    if dtype == "auto" and device_type == "cpu":
        dtype = "float32"
    pinned, commit = resolved_revision(model_id, revision)
    if adapter is not None and adapter_revision is None:
        adapter_revision = pinned if adapter == model_id else "main"
    setup = {
        "model_id": model_id,
        "architecture": architecture,
        "revision": str(revision),
        "commit": commit,
        "model_files": local_digest(model_id),
        "dtype": dtype,
        "device": device_type,
        "max_new_tokens": max_new_tokens,
        "trust_remote_code": trust_remote_code,
        "adapter": adapter,
        "adapter_subfolder": adapter_subfolder,
        "adapter_revision": None if adapter_revision is None else str(adapter_revision),
        "adapter_files": local_digest(adapter) if adapter and adapter != model_id else None,
        "transformers": transformers.__version__,
        "backend_version": BACKEND_VERSION,
    }
    if adapter is not None:
        from importlib.metadata import version

        setup["peft"] = version("peft")
    return setup, pinned, adapter_revision


def resolved_revision(model_id: str, revision: str) -> tuple[str, str | None]:
    """``revision`` pinned to the commit it resolves to now (offline: in the hub cache),
    and that commit (None for a local folder or when it cannot be resolved).

    A branch such as ``main`` moves; loaded from one commit and recorded with it
    (``main@<sha>``) in each prediction and in the answer journal's header, answers of an
    updated checkpoint are neither mixed with nor mistaken for those of the old one.
    Uses the resolution ``from_pretrained`` does itself (transformers'
    ``resolve_revision``), once for the processor, the model and the record.
    """
    from transformers.utils.hub import resolve_revision

    pinned = resolve_revision(model_id, revision)
    return pinned, getattr(pinned, "resolved", None)


def _audio_token_id(processor: Any) -> int | None:
    """The id of the processor's audio placeholder token, or None when it has none."""
    token = getattr(processor, "audio_token", None)
    if not isinstance(token, str):
        return None
    tid = processor.tokenizer.convert_tokens_to_ids(token)
    return tid if isinstance(tid, int) and tid != processor.tokenizer.unk_token_id else None
