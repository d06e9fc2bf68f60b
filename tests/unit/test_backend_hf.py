"""Tests of the ``transformers`` backend on tiny random-weight models of the real architectures.

The models are built offline (see ``tests/tiny_models.py``) and loaded through
``from_pretrained`` exactly as the published checkpoints load. Everything runs on CPU in
float32.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from cueprobe.backends.base import Backend  # noqa: E402
from cueprobe.backends.base import Request  # noqa: E402
from cueprobe.backends.hf import ARCHITECTURES  # noqa: E402
from cueprobe.backends.hf import AudioTooShortError  # noqa: E402
from cueprobe.backends.hf import TransformersBackend  # noqa: E402
from cueprobe.backends.hf import common_prefix_length  # noqa: E402
from cueprobe.backends.hf import load_audio  # noqa: E402
from cueprobe.backends.hf import new_tokens  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tiny_models  # noqa: E402

BUILDERS = {
    "qwen2_audio": tiny_models.build_tiny_qwen2_audio,
    "qwen2_5_omni": tiny_models.build_tiny_qwen2_5_omni_thinker,
    "audio_flamingo_3": tiny_models.build_tiny_audio_flamingo_3,
}
MODEL_CLASSES = {
    "qwen2_audio": "Qwen2AudioForConditionalGeneration",
    "qwen2_5_omni": "Qwen2_5OmniThinkerForConditionalGeneration",
    "audio_flamingo_3": "AudioFlamingo3ForConditionalGeneration",
}
AUDIO_TOKENS = {
    "qwen2_audio": "<|AUDIO|>",
    "qwen2_5_omni": "<|AUDIO|>",
    "audio_flamingo_3": "<sound>",
}
PROMPTS = [
    "What is the emotion of the speaker?",
    "Classify the emotion in this clip. Answer with one word: neutral, happy, sad or angry.",
    "Emotion?",
    "Acoustic cues: pitch high, loudness low, speech rate fast. What is the emotion?",
]
MAX_NEW_TOKENS = 6


def _write_wav(path: Path, seconds: float, *, freq: float | None, rate: int = 16000) -> str:
    n = int(round(seconds * rate))
    if freq is None:
        signal = np.random.default_rng(int(seconds * 1000)).normal(0.0, 0.2, n)
    else:
        signal = 0.3 * np.sin(2 * np.pi * freq * np.arange(n) / rate)
    soundfile.write(path, (signal * 32767).astype(np.int16), rate, subtype="PCM_16")
    return str(path)


@pytest.fixture(scope="session")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Four 16 kHz mono int16 files of different durations (sine and noise)."""
    d = tmp_path_factory.mktemp("wavs")
    specs = [(0.5, 220.0), (1.0, 440.0), (1.5, None), (0.8, 330.0)]
    return [_write_wav(d / f"utt{i}.wav", s, freq=f) for i, (s, f) in enumerate(specs)]


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: build(root / arch) for arch, build in BUILDERS.items()}


@pytest.fixture(scope="session", params=sorted(BUILDERS))
def backend(request: pytest.FixtureRequest, model_dirs: dict[str, str]) -> TransformersBackend:
    arch = request.param
    return TransformersBackend(
        model_dirs[arch],
        architecture=arch,
        revision="main",
        dtype="float32",
        batch_size=4,
        max_new_tokens=MAX_NEW_TOKENS,
        device="cpu",
    )


def _requests(wavs: list[str]) -> list[Request]:
    return [
        Request(utt_id=f"u{i}", audio_path=w, prompt=p, audio_key=f"u{i}")
        for i, (w, p) in enumerate(zip(wavs, PROMPTS, strict=True))
    ]


def _last_logits(backend: TransformersBackend, requests: list[Request]) -> torch.Tensor:
    inputs = backend.prepare(requests)
    with torch.inference_mode():
        return backend.model(**inputs).logits[:, -1].float()


# -- per architecture ------------------------------------------------------------------------


def test_loads_real_class_via_from_pretrained(backend: TransformersBackend) -> None:
    assert isinstance(backend, Backend)
    assert type(backend.model).__name__ == MODEL_CLASSES[backend.architecture]
    assert backend.processor.tokenizer.padding_side == "left"
    assert re.fullmatch(r"main@local-[0-9a-f]{12}", backend.info.revision)  # a folder
    decoding = f"greedy; max_new_tokens={MAX_NEW_TOKENS}; dtype=float32"
    assert backend.info.decoding.removesuffix(
        f"; stop={backend.generation_config.eos_token_id}"
    ) == (decoding)
    assert backend.model.dtype == torch.float32
    assert backend.sampling_rate == 16000


def test_batch_is_left_padded(backend: TransformersBackend, wavs: list[str]) -> None:
    mask = backend.prepare(_requests(wavs))["attention_mask"]
    assert bool((mask[:, -1] == 1).all())  # every row ends with real tokens
    assert bool((mask[:, 0] == 0).any())  # shorter rows are padded at the start


def test_batched_equals_one_at_a_time(backend: TransformersBackend, wavs: list[str]) -> None:
    requests = _requests(wavs)
    batched = backend.generate(requests)
    single = [backend.generate([r])[0] for r in requests]
    assert batched == single
    assert len(batched) == len(requests)
    assert all(isinstance(t, str) for t in batched)


def test_results_in_request_order(backend: TransformersBackend, wavs: list[str]) -> None:
    requests = _requests(wavs)
    forward = backend.generate(requests)
    backward = backend.generate(requests[::-1])
    assert backward[::-1] == forward


def test_deterministic_and_greedy(backend: TransformersBackend, wavs: list[str]) -> None:
    # the tiny AF3 checkpoint samples by default (like the published one)
    assert backend.generation_config.do_sample is False
    requests = _requests(wavs)
    assert backend.generate(requests) == backend.generate(requests)


def test_a_batch_of_one_utterance_decodes_its_audio_once(
    backend: TransformersBackend, wavs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Token conditions of one utterance share a batch: the file is read once, per row alike."""
    import cueprobe.backends.hf as hf

    calls = []

    def counting(path, *args, **kwargs):
        calls.append(path)
        return load_audio(path, *args, **kwargs)

    monkeypatch.setattr(hf, "load_audio", counting)
    same = [Request("u0", wavs[1], p, "u0") for p in PROMPTS]
    inputs = backend.prepare(same)
    assert calls == [wavs[1]]
    alone = backend.prepare(same[:1])
    key = next(k for k in inputs if "feature" in k and isinstance(inputs[k], torch.Tensor))
    assert torch.equal(inputs[key][0], alone[key][0])


#: token blocks of different lengths, as the conditions of one utterance give
TOKEN_BLOCKS = [
    "ENERGY=HIGH; PITCH=LOW",
    "ENERGY=VERY_LOW; PITCH=MID; DYNAMICS=VERY_DYNAMIC",
    "ENERGY=MID",
    "ENERGY=LOW; PITCH=VERY_HIGH; DYNAMICS=STATIC; BRIGHTNESS=DARK; VOICE_QUALITY=MODAL",
    "ENERGY=HIGH; PITCH=HIGH",
    "PITCH=LOW; ENERGY=HIGH",
]


def _conditions_of_one_utterance(wav: str) -> list[Request]:
    return [
        Request("u0", wav, f"What is the emotion? Acoustic cues: {block}.", "u0")
        for block in TOKEN_BLOCKS
    ]


def _spy_generate(
    backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> tuple[list, list]:
    """Record each ``model.generate`` call (with each row's logits at every step) and each
    forward pass that reads audio features."""
    calls: list = []
    audio_forwards: list = []
    config = backend.generation_config
    logging_config = copy.deepcopy(config)
    logging_config.return_dict_in_generate = True
    logging_config.output_logits = True
    generate, forward = backend.model.generate, backend.model.forward

    def spy(*args, **kwargs):
        assert kwargs["generation_config"] is config
        out = generate(*args, **(kwargs | {"generation_config": logging_config}))
        calls.append((kwargs, list(torch.stack(out.logits, dim=1))))
        return out

    @functools.wraps(forward)  # generate checks its kwargs against forward's signature
    def spy_forward(*args, **kwargs):
        if any(kwargs.get(k) is not None for k in ("input_features", "input_features_mask")):
            audio_forwards.append(kwargs["input_ids"].shape)
        return forward(*args, **kwargs)

    monkeypatch.setattr(backend.model, "generate", spy)
    monkeypatch.setattr(backend.model, "forward", spy_forward)
    return calls, audio_forwards


def assert_same_logits(batched: list[torch.Tensor], single: list[torch.Tensor]) -> None:
    """Each request's logits at every step it decoded alone (a batch runs on after a
    row's EOS until every row has ended)."""
    assert len(batched) == len(single)
    for a, b in zip(batched, single, strict=True):
        assert len(a) >= len(b) > 0
        torch.testing.assert_close(a[: len(b)], b, rtol=1e-5, atol=1e-5)


def test_conditions_of_one_utterance_share_the_prefix(
    backend: TransformersBackend, wavs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six prompts on one file: the audio and the common prefix run once, and every
    request gets the logits (and answer) it gets alone."""
    requests = _conditions_of_one_utterance(wavs[2])
    calls, audio_forwards = _spy_generate(backend, monkeypatch)
    shared = backend.generate(requests)
    assert len(audio_forwards) == 1  # the prefix, once, for six requests
    assert len(calls) == 2  # batch_size 4: suffixes 4 + 2, from the prefix's cache
    assert all(kwargs["past_key_values"] is not None for kwargs, _ in calls)
    shared_logits = [row for _, rows in calls for row in rows]
    calls.clear()
    single = [backend._generate_batch([r])[0] for r in requests]
    single_logits = [row for _, rows in calls for row in rows]
    assert shared == single
    assert_same_logits(shared_logits, single_logits)
    # two utterances in one call: each shares its own prefix, answers in request order
    other = [
        dataclasses.replace(r, utt_id="u1", audio_path=wavs[1], audio_key="u1") for r in requests
    ]
    mixed = [x for pair in zip(requests, other, strict=True) for x in pair]
    assert backend.generate(mixed) == [
        x for pair in zip(shared, backend.generate(other), strict=True) for x in pair
    ]


def test_prefix_sharing_off_or_impossible_runs_requests_as_usual(
    backend: TransformersBackend, wavs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = _conditions_of_one_utterance(wavs[0])
    expected = backend.generate(requests)
    calls, _ = _spy_generate(backend, monkeypatch)
    monkeypatch.setattr(backend, "share_prefix", False)
    assert backend.generate(requests) == expected
    assert all("past_key_values" not in kwargs for kwargs, _ in calls)
    # audio placeholders past the common prefix (here: an id that never occurs) -> no sharing
    monkeypatch.setattr(backend, "share_prefix", True)
    monkeypatch.setattr(backend, "_audio_token_id", -1)
    monkeypatch.setattr("cueprobe.backends.hf.MIN_AUDIO_TOKENS", 0)  # -1 is never heard
    assert backend._generate_shared(requests) is None
    assert backend.generate(requests) == expected


def test_a_group_shares_its_prefix_when_it_fills_half_a_batch(
    backend: TransformersBackend, wavs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Few conditions per file decode with other files' requests (fewer generate calls);
    from half a batch on, a file's requests share their prefix."""
    requests = _conditions_of_one_utterance(wavs[3])
    monkeypatch.setattr(backend, "batch_size", 8)
    calls, _ = _spy_generate(backend, monkeypatch)
    for n, shares in ((3, False), (4, True), (2, False)):
        calls.clear()
        backend.generate(requests[:n])
        assert all(("past_key_values" in kwargs) is shares for kwargs, _ in calls), n


def test_decoding_is_plain_argmax_with_a_dynamic_cache(
    backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoint settings that would change a padded row's answer (repetition penalty:
    the pads are EOS) or refuse the shared prefix's cache are overridden."""
    checkpoint = copy.deepcopy(backend.model.generation_config)
    checkpoint.repetition_penalty = 1.1
    checkpoint.use_cache = False
    checkpoint.cache_implementation = "static"
    # logits processors that change the argmax or the answer's length
    checkpoint.no_repeat_ngram_size = 2
    checkpoint.suppress_tokens = [5, 6]
    checkpoint.bad_words_ids = [[7]]
    checkpoint.min_new_tokens = 3
    monkeypatch.setattr(backend.model, "generation_config", checkpoint)
    config = backend._greedy_config()
    assert config.repetition_penalty == 1.0
    assert config.no_repeat_ngram_size == 0 and config.min_new_tokens is None
    assert config.suppress_tokens is None and config.bad_words_ids is None
    assert config.use_cache is True and config.cache_implementation is None
    assert config.do_sample is False and config.num_beams == 1


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_generate_runs_no_logits_processor_a_checkpoint_ships(
    model_dirs: dict[str, str], wavs: list[str], tmp_path: Path, arch: str
) -> None:
    """generate() fills each None of the config it is given from the model's own: the
    checkpoint's suppress_tokens, bad_words_ids and min_new_tokens came back in a real
    generate call although the greedy config had cleared them."""
    from transformers import GenerationConfig

    folder = tmp_path / arch
    shutil.copytree(model_dirs[arch], folder)
    shipped = GenerationConfig.from_pretrained(folder)
    shipped.suppress_tokens, shipped.bad_words_ids = [5, 6], [[7]]
    shipped.min_new_tokens, shipped.begin_suppress_tokens = 3, [8]
    shipped.save_pretrained(folder)
    backend = TransformersBackend(
        str(folder), architecture=arch, dtype="float32", max_new_tokens=3, device="cpu"
    )
    seen = []
    build = backend.model._get_logits_processor

    def spy(*args, **kwargs):
        processors = build(*args, **kwargs)
        seen.append([type(p).__name__ for p in processors])
        return processors

    backend.model._get_logits_processor = spy
    backend.generate(_requests(wavs)[:2])
    assert seen and all(names == [] for names in seen), seen


def test_a_checkpoint_without_a_stop_token_stops_at_the_end_of_turn(
    backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The published Qwen2.5-Omni-7B generation config names no stop token (the tiny Omni
    is built so): generate ran on past <|im_end|> for max_new_tokens, and the answer
    carried the next turn ("sad\nuser\n... angry, happy, ..."): unparsed."""
    tokenizer = backend.processor.tokenizer
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    checkpoint = copy.deepcopy(backend.model.generation_config)
    checkpoint.eos_token_id = None
    monkeypatch.setattr(backend.model, "generation_config", checkpoint)
    assert im_end in backend._greedy_config().eos_token_id
    # a checkpoint's own stop tokens are kept
    checkpoint.eos_token_id = [7]
    assert backend._greedy_config().eos_token_id == [7]
    # filled-in stop tokens are part of the decoding the answer journal is keyed by, so
    # answers that ran past the end of turn are asked again, not reused
    has_stop = "; stop=[" in backend.info.decoding
    assert has_stop is (backend.model.config.model_type.startswith("qwen2_5_omni"))


def test_token_rows_of_one_utterance_are_the_processors(
    backend: TransformersBackend, wavs: list[str]
) -> None:
    """The audio's features are computed once; each prompt's ids (tokenizer + the first
    request's run of placeholders) are exactly what the processor gives it."""
    requests = _conditions_of_one_utterance(wavs[1])
    inputs = backend.prepare(requests)
    mask = inputs["attention_mask"].bool()
    expected = [inputs["input_ids"][i][mask[i]] for i in range(len(requests))]
    first = backend.prepare(requests[:1])["input_ids"][0]
    rows = backend._token_rows(requests, first)
    assert [r.tolist() for r in rows] == [e.tolist() for e in expected]
    # where the check on the first request fails, the processor makes every row
    rows = backend._token_rows(requests, torch.cat([first, first[-1:]]))
    assert [r.tolist() for r in rows] == [e.tolist() for e in expected]


def test_common_prefix_length() -> None:
    t = torch.tensor
    assert common_prefix_length([t([1, 2, 3, 4]), t([1, 2, 3, 9, 9]), t([1, 2, 7])]) == 2
    assert common_prefix_length([t([1, 2, 3]), t([1, 2, 3, 4])]) == 2  # one token left each
    assert common_prefix_length([t([5, 2]), t([6, 2])]) == 0
    assert common_prefix_length([t([1, 2, 3])]) == 2


def test_audio_reaches_model(backend: TransformersBackend, wavs: list[str]) -> None:
    """The ``audio=`` trap: the placeholder expands with the duration and the audio matters."""
    token_id = backend.processor.tokenizer.convert_tokens_to_ids(AUDIO_TOKENS[backend.architecture])
    same_prompt = [
        Request("a", wavs[0], PROMPTS[0], "a"),  # 0.5 s
        Request("b", wavs[2], PROMPTS[0], "b"),  # 1.5 s
    ]
    counts = [int((backend.prepare([r])["input_ids"] == token_id).sum()) for r in same_prompt]
    # 100 frames/s, two 2x reductions: 0.5 s -> 12 placeholders, 1.5 s -> 37
    assert counts == [12, 37]
    logits = _last_logits(backend, same_prompt[:1]), _last_logits(backend, same_prompt[1:])
    assert not torch.allclose(logits[0], logits[1])


def test_peft_adapter_loads_and_changes_logits(
    backend: TransformersBackend,
    model_dirs: dict[str, str],
    wavs: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from peft import PeftModel

    arch = backend.architecture
    # AF3 style: the adapter lives in a subfolder of a repository; others: a plain folder
    subfolder = "think" if arch == "audio_flamingo_3" else None
    adapter = str(tmp_path / "lora")
    tiny_models.build_tiny_peft_adapter(model_dirs[arch], Path(adapter, subfolder or ""))
    adapted = TransformersBackend(
        model_dirs[arch],
        architecture=arch,
        dtype="float32",
        batch_size=4,
        max_new_tokens=MAX_NEW_TOKENS,
        adapter=adapter,
        adapter_subfolder=subfolder,
        device="cpu",
    )
    assert isinstance(adapted.model, PeftModel)
    suffix = f"; adapter={adapter}" + (f"/{subfolder}" if subfolder else "") + "@main@local-"
    assert adapted.info.decoding.removesuffix(adapted.info.decoding[-12:]).endswith(suffix)
    requests = _requests(wavs)
    answers = adapted.generate(requests)
    assert len(answers) == len(requests)
    assert answers == [adapted.generate([r])[0] for r in requests]
    same = _conditions_of_one_utterance(wavs[1])  # prefix sharing through the adapter
    calls, _ = _spy_generate(adapted, monkeypatch)
    shared = adapted.generate(same)
    assert all("past_key_values" in kwargs for kwargs, _ in calls)
    shared_logits = [row for _, rows in calls for row in rows]
    calls.clear()
    assert shared == [adapted._generate_batch([r])[0] for r in same]
    assert_same_logits(shared_logits, [row for _, rows in calls for row in rows])
    assert not torch.allclose(_last_logits(adapted, requests), _last_logits(backend, requests))


def test_system_prompt_replaces_the_template_default(
    model_dirs: dict[str, str], wavs: list[str]
) -> None:
    backend = TransformersBackend(
        model_dirs["qwen2_audio"],
        architecture="qwen2_audio",
        dtype="float32",
        system_prompt="You classify emotions.",
        device="cpu",
    )
    text = backend.processor.apply_chat_template(
        backend.conversation("Emotion?", wavs[0]), tokenize=False, add_generation_prompt=True
    )
    assert text.startswith("<|im_start|>system\nYou classify emotions.<|im_end|>\n")
    assert "You are a helpful assistant." not in text
    assert text.endswith("Emotion?<|im_end|>\n<|im_start|>assistant\n")
    assert len(backend.generate(_requests(wavs))) == len(wavs)


@pytest.mark.parametrize("arch", ["qwen2_audio", "qwen2_5_omni"])
def test_no_system_prompt_is_the_templates_default_and_an_empty_one_an_empty_turn(
    model_dirs: dict[str, str], wavs: list[str], arch: str
) -> None:
    """None leaves the Qwen templates' default system turn; "" sends an empty one, another
    prompt (config `prompts.system` refuses "", which prompt_sha hashed as None)."""
    texts = {}
    for system in (None, ""):
        backend = TransformersBackend(
            model_dirs[arch], architecture=arch, dtype="float32", system_prompt=system, device="cpu"
        )
        texts[system] = backend.chat_text(Request("u", wavs[0], "Emotion?", "u"))
    assert texts[None].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert texts[""].startswith("<|im_start|>system\n<|im_end|>\n<|im_start|>user\n")
    assert texts[""].count("<|im_start|>system") == 1


def test_a_bumped_backend_version_is_in_the_header_and_the_setup(
    model_dirs: dict[str, str], monkeypatch
) -> None:
    """The journal reuses answers by header: from BACKEND_VERSION 2 on the decoding names
    it, so the old code's answers are asked again (version 1 adds nothing: journals
    written before it was recorded keep their answers)."""
    from cueprobe.backends import hf

    kw = dict(architecture="qwen2_audio", dtype="float32", device="cpu")
    v1 = TransformersBackend(model_dirs["qwen2_audio"], **kw).info.decoding
    assert "backend v" not in v1
    monkeypatch.setattr(hf, "BACKEND_VERSION", 2)
    assert TransformersBackend(model_dirs["qwen2_audio"], **kw).info.decoding == v1 + "; backend v2"
    assert hf.load_setup(model_dirs["qwen2_audio"], **kw)["backend_version"] == 2


# -- architecture independent -----------------------------------------------------------------


def test_generate_restores_order_across_sorted_batches(
    backend: TransformersBackend, wavs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def echo(batch: list[Request]) -> list[str]:
        seen.append([r.utt_id for r in batch])
        return [r.prompt for r in batch]

    monkeypatch.setattr(backend, "_generate_batch", echo)
    monkeypatch.setattr(backend, "batch_size", 3)
    prompts = ["ccc", "a", "bbbbb", "dd", "eeee"]
    requests = [Request(f"u{i}", wavs[i % 2], p, f"k{i}") for i, p in enumerate(prompts)]
    assert backend.generate(requests) == prompts
    assert seen == [["u1", "u3", "u0"], ["u4", "u2"]]  # sorted by prompt length
    assert backend.generate([]) == []


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_a_file_the_model_fails_on_is_an_error_answer_not_a_dead_job(
    model_dirs: dict[str, str],
    wavs: list[str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    arch: str,
) -> None:
    """A 20 ms clip gives no audio token (Qwen2-Audio's forward then failed, and the other
    two answered from the text alone) and a file unreadable since the manifest was built
    raised too: either killed the job, on every run, since requests come in a fixed order.
    Now its batch is answered one request at a time and the bad file's rows are None
    (`error`), once warned; the others get the answers they get alone."""
    make = functools.partial(
        TransformersBackend,
        model_dirs[arch],
        architecture=arch,
        dtype="float32",
        max_new_tokens=MAX_NEW_TOKENS,
        device="cpu",
    )
    short = _write_wav(tmp_path / "short.wav", 0.02, freq=200.0)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav file")
    paths = [wavs[0], short, wavs[1], str(broken), short]
    requests = [Request(f"u{i}", p, PROMPTS[i % 4], f"k{i}") for i, p in enumerate(paths)]
    backend = make(batch_size=4)
    with caplog.at_level(logging.WARNING, logger="cueprobe.backends.hf"):
        answers = backend.generate(requests)
    alone = make(batch_size=1)
    assert answers[0] == alone.generate([requests[0]])[0]
    assert answers[2] == alone.generate([requests[2]])[0]
    assert answers[1] is None and answers[3] is None and answers[4] is None
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2, warned  # once per file
    assert warned[0].startswith(f"{short}: cannot be put to the model (AudioTooShortError: 0.020 s")
    assert "audio token(s) (fewer than 2): it would answer from the text alone" in warned[0]
    assert warned[1].startswith(f"{broken}: cannot be put to the model (")
    # the conditions of one short clip, which share their prefix, fail alike
    group = [Request("s", short, p, "s") for p in PROMPTS[:3]]
    assert make(batch_size=2).generate(group) == [None, None, None]


def test_the_model_failing_on_files_in_a_row_stops_the_job_short_clips_do_not(
    model_dirs: dict[str, str], wavs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model failing on file after file is the set-up's fault (a broken checkpoint, a
    dead GPU): the job stops rather than write a table of errors. Clips too short for the
    model are the files' fault: five side by side stopped the job, on every run."""
    from cueprobe.backends import hf

    monkeypatch.setattr(hf, "FAILED_FILES_IN_ROW", 3)
    backend = TransformersBackend(
        model_dirs["qwen2_audio"], architecture="qwen2_audio", device="cpu", dtype="float32"
    )
    shorts = [_write_wav(tmp_path / f"s{i}.wav", 0.01 + 0.001 * i, freq=None) for i in range(5)]
    requests = [Request(f"u{i}", p, PROMPTS[0], f"k{i}") for i, p in enumerate(shorts)]
    answers = backend.generate([*requests, *_requests(wavs)[:2]])
    assert answers[:5] == [None] * 5 and all(isinstance(a, str) for a in answers[5:])

    def broken(inputs):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(backend, "_answer", broken)
    with pytest.raises(
        RuntimeError,
        match=r"the model failed on 3 files in a row, the last .*utt\d\.wav \(RuntimeError: CUDA error",
    ):
        backend.generate(_requests(wavs))


def test_a_checkpoint_missing_offline_names_the_repository_and_the_cache(tmp_path: Path) -> None:
    """On a compute node with HF_HUB_OFFLINE=1 and the weights not in the cache, the job
    failed with transformers' "couldn't connect to 'https://huggingface.co'": no
    repository, revision or cache named."""
    code = (
        "from cueprobe.backends.hf import TransformersBackend\n"
        "TransformersBackend('nobody/no-such-model', architecture='qwen2_audio', revision='v1')"
    )
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("OSError: nobody/no-such-model@v1: cannot load the checkpoint (")
    assert (
        f"with HF_HUB_OFFLINE=1 (set here), only the hub cache {tmp_path / 'hf' / 'hub'} is "
        "read: download it once where there is internet, `hf download nobody/no-such-model "
        "--revision v1`"
    ) in last
    # `models/ckpt` run from another folder (`--directory`) is read as a Hub id
    assert last.endswith(
        f"A local checkpoint folder? It is not in {Path.cwd()}, which relative paths are read "
        "from: write its full path"
    )
    # not for a failure that is no "not found" (a ValueError of the loading code)
    from cueprobe.backends.hf import _load_hint

    assert "A local checkpoint folder?" not in _load_hint("org/x", "main", None, ValueError("x"))


def test_midashenglm_requires_trust_remote_code() -> None:
    with pytest.raises(ValueError, match=r"mispeech/midashenglm-7b.*`trust_remote_code: true`"):
        TransformersBackend("mispeech/midashenglm-7b", architecture="midashenglm")


@pytest.mark.parametrize(("arch", "passes_rate"), [("qwen2_audio", True), ("midashenglm", False)])
def test_midashenglm_gets_no_sampling_rate_from_the_caller(
    wavs: list[str], arch: str, passes_rate: bool
) -> None:
    """MiDashengLM's remote processor hands its own sampling_rate to the feature
    extractor, and one from the caller is routed there too: a duplicate keyword
    (reviewed against its processor code; the remote code cannot be loaded offline, so
    a stub processor records what prepare passes)."""
    seen = {}

    class Processor:
        feature_extractor = types.SimpleNamespace(n_samples=30 * 16000)

        def apply_chat_template(self, conversation, **kwargs):
            return "chat"

        def __call__(self, **kwargs):
            seen.update(kwargs)
            wave = torch.tensor([[0.1234567, -0.7654321]])
            return {"input_ids": torch.ones(1, 3, dtype=torch.long), "input_values": wave}

    backend = object.__new__(TransformersBackend)
    backend.processor, backend.system_prompt, backend.device = Processor(), None, "cpu"
    backend.sampling_rate, backend._pads = 16000, ARCHITECTURES[arch].processor_pads
    backend._takes_rate = ARCHITECTURES[arch].processor_takes_rate
    backend._truncates, backend._cut_files = ARCHITECTURES[arch].truncates_audio, set()
    backend._pads_to_window = ARCHITECTURES[arch].pads_to_window
    backend._audio_token_id = None  # the stub's prompt has no audio placeholder
    backend._counts_audio_tokens = ARCHITECTURES[arch].expands_audio_tokens
    backend._waveform_key = ARCHITECTURES[arch].waveform_key
    backend.model = types.SimpleNamespace(dtype=torch.bfloat16)
    inputs = backend.prepare(_requests(wavs)[:1])
    assert ("sampling_rate" in seen) is passes_rate and len(seen["audio"]) == 1
    # MiDashengLM's raw waveform stays float32 (its front end computes mel features in
    # float32; a bfloat16 copy rounded the samples first); features are cast as before
    want = torch.float32 if arch == "midashenglm" else torch.bfloat16
    assert inputs["input_values"].dtype == want
    # no audio placeholder in the ids: refused where the processor is known to expand it
    # into one per frame; MiDashengLM's remote processor is not, so it is not checked
    backend._audio_token_id = 99
    if ARCHITECTURES[arch].expands_audio_tokens:
        with pytest.raises(AudioTooShortError):
            backend.prepare(_requests(wavs)[:1])
    else:
        backend.prepare(_requests(wavs)[:1])


@pytest.mark.parametrize("arch", ["qwen2_audio", "qwen2_5_omni"])
def test_audio_past_the_models_window_is_logged_once(
    model_dirs: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture, arch: str
) -> None:
    """Qwen2-Audio's processor pads and truncates every file to 30 s (Qwen2.5-Omni's to
    300 s; the tiny one's window is 30 s too): the longest IEMOCAP utterances (~35 s)
    were scored on their first 30 s with no record."""
    backend = TransformersBackend(
        model_dirs[arch], architecture=arch, device="cpu", dtype="float32"
    )
    long = _write_wav(tmp_path / "long.wav", 31.0, freq=200.0)
    request = Request(utt_id="u", audio_path=long, prompt=PROMPTS[0], audio_key="u")
    with caplog.at_level(logging.WARNING, logger="cueprobe.backends.hf"):
        backend.prepare([request])
        backend.prepare([request])
    assert [r.getMessage() for r in caplog.records] == [
        f"{long}: 31.0 s of audio; the model hears its first 30 s (its window)"
    ]


def test_qwen2_5_omni_features_span_the_batch_not_its_300_s_window(
    tmp_path: Path, wavs: list[str]
) -> None:
    """Qwen2.5-Omni's processor pads every clip to the feature extractor's 300 s window
    (4.8 M samples: ~0.5 s of CPU and 15 MB of features a clip) and the model keeps only
    the frames its feature mask marks valid: the backend pads a batch to its longest clip
    instead, to the same logits and answers."""
    path = tiny_models.build_tiny_qwen2_5_omni_thinker(tmp_path / "omni", chunk_length=300)
    backend = TransformersBackend(
        path, architecture="qwen2_5_omni", device="cpu", dtype="float32", batch_size=4,
        max_new_tokens=MAX_NEW_TOKENS,
    )  # fmt: skip
    assert backend.processor.feature_extractor.n_samples == 300 * 16000  # as published
    requests = _requests(wavs)
    frames = backend.prepare(requests)["input_features"].shape[-1]
    assert frames == (int(1.5 * 16000) + 400) // 160  # the longest clip (1.5 s) + n_fft
    logits, answers = _last_logits(backend, requests), backend.generate(requests)
    backend._pads_to_window = False  # the processor's own padding
    assert backend.prepare(requests)["input_features"].shape[-1] == 30000
    assert torch.equal(_last_logits(backend, requests), logits)
    assert backend.generate(requests) == answers


def test_a_hub_checkpoint_records_the_commit_its_revision_resolved_to(
    model_dirs: dict[str, str], tmp_path: Path
) -> None:
    """``main`` moves: a checkpoint loaded by hub id (here from an offline hub cache laid
    out as huggingface_hub writes it) records ``main@<sha>``, so the answers of an updated
    checkpoint are not reused for the new one (a local folder: test_a_local_folder_...)."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--cueprobe--tiny-qwen2-audio"
    shutil.copytree(model_dirs["qwen2_audio"], repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    script = (
        "from cueprobe.backends.hf import TransformersBackend\n"
        "b = TransformersBackend('cueprobe/tiny-qwen2-audio', architecture='qwen2_audio',"
        " revision='main', device='cpu', dtype='float32')\n"
        "print('REVISION', b.info.revision)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"REVISION main@{sha}" in done.stdout.splitlines()


def test_a_local_folder_is_recorded_by_its_files_not_its_path(
    model_dirs: dict[str, str], tmp_path: Path
) -> None:
    """A local checkpoint (paper.yaml's ft-AF3 adapter) was recorded by path and ``main``
    alone: new weights put in its place reused every old answer."""
    from cueprobe.backends.hf import local_digest

    src = Path(model_dirs["qwen2_audio"])
    dup = tmp_path / "dup"
    shutil.copytree(src, dup)
    assert local_digest(str(dup)) == local_digest(str(src))  # a copy is the same checkpoint
    weights = next(dup.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # the weights' last byte: new weights of the same size
    weights.write_bytes(bytes(data))
    assert local_digest(str(dup)) != local_digest(str(src))
    new = local_digest(str(dup))
    (dup / ".cache").mkdir()
    (dup / ".cache" / "x").write_text("lock")  # hidden: not part of the checkpoint
    assert local_digest(str(dup)) == new
    assert local_digest("Qwen/Qwen2-Audio-7B-Instruct") is None


def test_architectures_are_the_documented_ones() -> None:
    assert sorted(ARCHITECTURES) == [
        "audio_flamingo_3",
        "midashenglm",
        "qwen2_5_omni",
        "qwen2_audio",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"architecture": "whisper"}, r"unknown architecture 'whisper'"),
        ({"architecture": "qwen2_audio", "dtype": "int8"}, r"unknown dtype 'int8'"),
        ({"architecture": "qwen2_audio", "batch_size": 0}, r"batch_size must be >= 1, got 0"),
        (
            {"architecture": "qwen2_audio", "max_new_tokens": 0},
            r"max_new_tokens must be >= 1, got 0",
        ),
    ],
)
def test_invalid_options_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TransformersBackend("/nonexistent", **kwargs)


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("qwen2_audio", r"no audio inputs were passed"),
        ("audio_flamingo_3", r"`audios` which is deprecated"),
    ],
)
def test_processor_rejects_old_audios_keyword(
    model_dirs: dict[str, str], arch: str, message: str
) -> None:
    """transformers 5.23 refuses ``audios=``; older versions silently dropped it."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dirs[arch])
    text = [f"{AUDIO_TOKENS[arch]}hi"]
    with pytest.raises(ValueError, match=message):
        processor(text=text, audios=[np.zeros(16000, dtype=np.float32)])


def test_load_audio_downmixes_and_resamples(tmp_path: Path) -> None:
    rate = 44100
    t = np.arange(rate) / rate
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1) * 0.5
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, rate, subtype="PCM_16")
    signal = load_audio(str(path), 16000)
    assert signal.dtype == np.float32
    assert signal.ndim == 1
    assert signal.shape == (16000,)
    assert np.max(np.abs(signal)) == pytest.approx(0.25, abs=0.02)


def test_load_audio_keeps_matching_rate(wavs: list[str]) -> None:
    signal = load_audio(wavs[1], 16000)
    assert signal.shape == (16000,)
    assert signal.dtype == np.float32


def test_new_tokens_cuts_the_prompt_only_when_echoed() -> None:
    prompt = torch.tensor([[0, 5, 6], [7, 8, 9]])
    echoed = torch.tensor([[0, 5, 6, 1, 2], [7, 8, 9, 3, 4]])
    assert new_tokens(echoed, prompt).tolist() == [[1, 2], [3, 4]]
    continuation = torch.tensor([[1, 2], [3, 4]])
    assert new_tokens(continuation, prompt).tolist() == [[1, 2], [3, 4]]


def test_adapter_revision_is_pinned_and_dtype_auto_is_float32_on_cpu(
    model_dirs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PEFT adapter loads at a pinned revision (the model's own for its own repo)."""
    from peft import PeftModel

    arch = "qwen2_audio"
    tiny_models.build_tiny_peft_adapter(model_dirs[arch], tmp_path / "lora")
    seen = []
    load = PeftModel.from_pretrained

    def spy(model, name, **kwargs):
        seen.append(kwargs.get("revision"))
        return load(model, str(tmp_path / "lora"), subfolder=kwargs.get("subfolder"))

    monkeypatch.setattr(PeftModel, "from_pretrained", spy)
    # as a hub checkpoint resolves: the revision's commit now (here for the local folder)
    from huggingface_hub import ResolvedRevision

    import cueprobe.backends.hf as hf

    pinned = ResolvedRevision("c0ffee", initial="r1")
    monkeypatch.setattr(hf, "resolved_revision", lambda model_id, revision: (pinned, "c0ffee"))
    kw = dict(architecture=arch, max_new_tokens=MAX_NEW_TOKENS, device="cpu")
    own = TransformersBackend(model_dirs[arch], adapter=model_dirs[arch], revision="r1", **kw)
    assert own.model.dtype == torch.float32 and "dtype=float32" in own.info.decoding
    assert own.info.revision == "r1@c0ffee" and own.info.decoding.endswith("@r1")
    other = TransformersBackend(
        model_dirs[arch], adapter="org/lora", adapter_revision="abc123", **kw
    )
    assert seen == ["r1", "abc123"]  # its own repo: the model revision; dtype auto: float32
    assert seen[0].resolved == "c0ffee"  # ... the very commit the model loaded from
    assert other.info.decoding.endswith("; adapter=org/lora@abc123")


def test_a_job_given_gpus_that_torch_cannot_use_fails_instead_of_running_on_the_cpu(
    monkeypatch,
) -> None:
    """A torch build for a newer CUDA than the node's driver sees no GPU: the job ran a
    7B model on its 4 CPUs until the time limit, silently. Where the job was given GPUs
    (SLURM sets CUDA_VISIBLE_DEVICES for --gpus) that is now an error naming the cause."""
    from cueprobe.backends.hf import default_device
    from cueprobe.backends.hf import load_setup

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for var in ("SLURM_JOB_ID", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(
        RuntimeError, match=r"given GPU\(s\) \(CUDA_VISIBLE_DEVICES=0\).*built for CUDA"
    ):
        default_device()
    with pytest.raises(RuntimeError, match="CUDA_VISIBLE_DEVICES=0"):
        load_setup("any/model", architecture="qwen2_audio")  # before any download or load
    assert load_setup("any/model", architecture="qwen2_audio", device="cpu")["device"] == "cpu"
    for cpu in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", cpu)
        assert default_device() == "cpu"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert default_device() == "cpu"
    # in a SLURM job what SLURM allocated counts: a CPU job may inherit the submitting
    # shell's CUDA_VISIBLE_DEVICES
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert default_device() == "cpu"
    monkeypatch.setenv("SLURM_JOB_GPUS", "0")
    with pytest.raises(RuntimeError, match=r"SLURM_JOB_GPUS=0"):
        default_device()


# -- what the model is asked and what is kept of its answer (a mutation review) ------------


def test_the_prompt_ends_with_the_assistant_turn(backend: TransformersBackend, wavs) -> None:
    """Without the generation prompt the model continues the user's turn; the template
    test rendered its own text, so chat_text's flag was never checked."""
    text = backend.chat_text(_requests(wavs)[0])
    assert text.rstrip("\n").endswith("assistant"), text[-60:]


def test_the_answer_is_the_new_tokens_decoded_plain(
    backend: TransformersBackend, wavs, monkeypatch
):
    """The whole sequence decoded (prompt, label list and all: unparsed), special tokens
    kept (`sad<|im_end|>`: a mention, not exact) or the leading space kept all passed:
    batched, single and shared runs agreed with each other."""
    tok = backend.processor.tokenizer
    tail = tok(" sad", add_special_tokens=False)["input_ids"]
    tail += [tok.convert_tokens_to_ids("<|im_end|>")]

    def echo_then_sad(input_ids, **kwargs):  # what generate returns: prompt + new tokens
        new = torch.tensor(tail).expand(input_ids.shape[0], -1)
        return torch.cat([input_ids, new.to(input_ids)], dim=1)

    monkeypatch.setattr(backend.model, "generate", echo_then_sad)
    assert backend.generate(_requests(wavs)) == ["sad"] * 4


def test_generation_stops_at_max_new_tokens(backend: TransformersBackend, wavs, monkeypatch):
    """A checkpoint's own max_new_tokens (50 here) applied, while the journal's header
    said 6."""
    assert backend.generation_config.max_new_tokens == MAX_NEW_TOKENS
    lengths, generate = [], backend.model.generate

    def spy(*args, **kwargs):
        out = generate(*args, **kwargs)
        lengths.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(backend.model, "generate", spy)
    monkeypatch.setattr(backend.model.generation_config, "max_new_tokens", 50)
    monkeypatch.setattr(backend.model.generation_config, "max_length", 200)
    backend.generate(_requests(wavs))
    assert lengths and max(lengths) <= MAX_NEW_TOKENS


def test_new_tokens_keeps_a_continuation_longer_than_the_prompt() -> None:
    assert new_tokens(torch.tensor([[1, 2, 3, 4]]), torch.tensor([[0, 5]])).tolist() == [
        [1, 2, 3, 4]
    ]


def test_only_failures_in_a_row_stop_the_job(
    backend: TransformersBackend, wavs, monkeypatch, tmp_path
):
    """Failures alternating with answers (fail, ok, fail, ok, fail) stopped the job as
    three in a row when a lone success did not reset the count (a mutation review)."""
    from cueprobe.backends import hf

    monkeypatch.setattr(hf, "FAILED_FILES_IN_ROW", 3)
    monkeypatch.setattr(backend, "_failed_files", set())
    monkeypatch.setattr(backend, "_failed_in_row", 0)
    monkeypatch.setattr(backend, "share_prefix", False)
    monkeypatch.setattr(backend, "_generate_batch", lambda reqs: 1 / 0)  # every batch fails
    calls = []

    def every_other(inputs):  # alone: fail, answer, fail, answer, fail
        calls.append(1)
        if len(calls) % 2:
            raise RuntimeError("model failed")
        return ["sad"]

    monkeypatch.setattr(backend, "_answer", every_other)
    files = [shutil.copy(wavs[0], tmp_path / f"f{i}.wav") for i in range(5)]
    reqs = [Request(f"u{i}", str(f), "Emotion?", f"k{i}") for i, f in enumerate(files)]
    assert backend.generate(reqs) == [None, "sad", None, "sad", None]
