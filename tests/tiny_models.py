"""Tiny random-weight models of the real audio-language architectures, for offline tests.

Each builder writes a folder that ``from_pretrained`` loads exactly as it loads the real
checkpoint: a tiny config of the real architecture (1-2 layers, hidden size 32), random
weights drawn under a fixed torch seed, a byte-level BPE tokenizer trained on the spot with
the ``tokenizers`` library and wrapped in the real tokenizer class (with the special tokens
and chat template each processor needs), the real feature extractor and the real processor
class. Nothing is downloaded.

Builders are idempotent: a folder that already holds a finished build (marker file
``.tiny_complete``) is returned as is.
"""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB_TRAIN_SIZE = 320
SEED = 0

_CORPUS = [
    "What is the emotion of the speaker? Answer with one word.",
    "neutral happy sad angry fear disgust surprise calm frustrated excited",
    "The speaker sounds angry. The speaker sounds happy. The speaker sounds sad.",
    "Acoustic cues: pitch high, loudness low, speech rate fast, jitter medium.",
    "You are a helpful assistant. Listen to the audio and answer the question.",
    "Transcribe the input speech. Classify the emotion in this clip.",
    "0 1 2 3 4 5 6 7 8 9 mean median slope percentile",
    "system user assistant Audio : \n",
]

_MARKER = ".tiny_complete"

# Chat templates, modelled on the ones published with each checkpoint (whitespace kept
# literal, so no Jinja whitespace control).
QWEN2_AUDIO_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if 'audio' in content or 'audio_url' in content or content['type'] == 'audio' %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

QWEN2_5_OMNI_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# AF3 puts the <sound> placeholder before the text of a turn, whatever the part order.
AUDIO_FLAMINGO_3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' %}<sound>{% endif %}"
    "{% endfor %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _done(path: Path) -> bool:
    return (path / _MARKER).is_file()


def _mark_done(path: Path) -> str:
    (path / _MARKER).write_text("ok\n")
    return str(path)


def _train_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a tiny byte-level BPE on a fixed corpus; return (vocab, merges)."""
    import json

    from tokenizers import Tokenizer
    from tokenizers import models
    from tokenizers import pre_tokenizers
    from tokenizers import trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_TRAIN_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


def _qwen2_tokenizer(
    extra_tokens: list[str],
    *,
    chat_template: str,
    named_tokens: dict[str, str] | None = None,
):
    """A real ``Qwen2Tokenizer`` on the tiny BPE, with the given added special tokens."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab, merges = _train_bpe()
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=named_tokens or {},
    )
    specials = [t for t in _QWEN_SPECIALS + extra_tokens if t not in tokenizer.get_vocab()]
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tokenizer.chat_template = chat_template
    return tokenizer


def _whisper_feature_extractor(chunk_length: int):
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=128,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=chunk_length,
        n_fft=400,
        padding_value=0.0,
        return_attention_mask=True,
    )


def _text_config(vocab_size: int, tokenizer) -> dict:
    return {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
    }


def _generation_config(tokenizer, *, sampling: bool, stop_tokens: bool = True):
    from transformers import GenerationConfig

    kwargs = {}
    if sampling:  # like AF3's published generation config: samples unless told otherwise
        kwargs = {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 20}
    if not stop_tokens:  # like Qwen2.5-Omni-7B's: no stop token (it is in config.json only)
        return GenerationConfig(**kwargs)
    return GenerationConfig(
        eos_token_id=[
            tokenizer.convert_tokens_to_ids("<|im_end|>"),
            tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        ],
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )


def _vocab_size(tokenizer) -> int:
    # round up like real checkpoints (embedding rows > tokenizer entries)
    return ((len(tokenizer) + 63) // 64) * 64


def build_tiny_qwen2_audio(path: str | Path, *, chunk_length: int = 30) -> str:
    """Build a tiny ``Qwen2AudioForConditionalGeneration`` checkpoint in ``path``.

    Parameters
    ----------
    path : str or Path
        Output folder (created).
    chunk_length : int
        Audio window of the feature extractor in seconds (30 in the real checkpoints); the
        encoder's ``max_source_positions`` follows (50 per second). A shorter window makes
        the per-request audio work smaller, e.g. for benchmarks.

    Returns
    -------
    str
        The folder, loadable with ``from_pretrained``.
    """
    from transformers import Qwen2AudioConfig
    from transformers import Qwen2AudioForConditionalGeneration
    from transformers import Qwen2AudioProcessor

    path = Path(path)
    if _done(path):
        return str(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _qwen2_tokenizer(
        ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"],
        chat_template=QWEN2_AUDIO_CHAT_TEMPLATE,
    )
    processor = Qwen2AudioProcessor(
        feature_extractor=_whisper_feature_extractor(chunk_length),
        tokenizer=tokenizer,
        chat_template=QWEN2_AUDIO_CHAT_TEMPLATE,
    )
    config = Qwen2AudioConfig(
        audio_config={
            "num_mel_bins": 128,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "max_source_positions": 50 * chunk_length,
        },
        text_config={"model_type": "qwen2", **_text_config(_vocab_size(tokenizer), tokenizer)},
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    torch.manual_seed(SEED)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    model.generation_config = _generation_config(tokenizer, sampling=False)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return _mark_done(path)


def build_tiny_qwen2_5_omni_thinker(path: str | Path, *, chunk_length: int = 30) -> str:
    """Build a tiny Qwen2.5-Omni checkpoint (thinker only) in ``path``.

    The folder holds a full ``Qwen2_5OmniConfig`` (``model_type: qwen2_5_omni``, audio output
    disabled, so no talker or token2wav) whose weights carry the ``thinker.`` prefix, like
    the published checkpoint; ``Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained``
    loads it the same way it loads ``Qwen/Qwen2.5-Omni-7B``.

    Parameters
    ----------
    path : str or Path
        Output folder (created).
    chunk_length : int
        Audio window of the feature extractor in seconds (30 in the real checkpoints); the
        encoder's ``max_source_positions`` follows (50 per second). A shorter window makes
        the per-request audio work smaller, e.g. for benchmarks.

    Returns
    -------
    str
        The folder, loadable with ``from_pretrained``.
    """
    from transformers import Qwen2_5OmniConfig
    from transformers import Qwen2_5OmniForConditionalGeneration
    from transformers import Qwen2_5OmniProcessor
    from transformers import Qwen2VLImageProcessor
    from transformers import Qwen2VLVideoProcessor

    path = Path(path)
    if _done(path):
        return str(path)
    path.mkdir(parents=True, exist_ok=True)
    named = {
        "image_token": "<|IMAGE|>",
        "audio_token": "<|AUDIO|>",
        "video_token": "<|VIDEO|>",
        "vision_bos_token": "<|vision_bos|>",
        "vision_eos_token": "<|vision_eos|>",
        "audio_bos_token": "<|audio_bos|>",
        "audio_eos_token": "<|audio_eos|>",
    }
    tokenizer = _qwen2_tokenizer(
        list(named.values()), chat_template=QWEN2_5_OMNI_CHAT_TEMPLATE, named_tokens=named
    )
    ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in named.items()}
    processor = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(),
        video_processor=Qwen2VLVideoProcessor(),
        feature_extractor=_whisper_feature_extractor(chunk_length),
        tokenizer=tokenizer,
        chat_template=QWEN2_5_OMNI_CHAT_TEMPLATE,
    )
    text = _text_config(_vocab_size(tokenizer), tokenizer)
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [2, 1, 1],
    }
    thinker = {
        "audio_config": {
            "num_mel_bins": 128,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "max_source_positions": 50 * chunk_length,
            "n_window": 100,
            "output_dim": 32,
        },
        "vision_config": {
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 32,
            "fullatt_block_indexes": [0],
        },
        "text_config": text,
        "audio_token_index": ids["audio_token"],
        "image_token_index": ids["image_token"],
        "video_token_index": ids["video_token"],
        "audio_start_token_id": ids["audio_bos_token"],
        "audio_end_token_id": ids["audio_eos_token"],
        "vision_start_token_id": ids["vision_bos_token"],
        "vision_end_token_id": ids["vision_eos_token"],
        "user_token_id": tokenizer.convert_tokens_to_ids("<|im_start|>"),
    }
    # the (unused) talker keeps its defaults but with token ids inside the tiny vocabulary
    talker = {
        "tts_text_start_token_id": tokenizer.pad_token_id,
        "tts_text_end_token_id": tokenizer.pad_token_id,
        "tts_text_pad_token_id": tokenizer.pad_token_id,
        "vision_start_token_id": ids["vision_bos_token"],
        "vision_end_token_id": ids["vision_eos_token"],
        "audio_start_token_id": ids["audio_bos_token"],
        "audio_end_token_id": ids["audio_eos_token"],
    }
    config = Qwen2_5OmniConfig(
        thinker_config=thinker, talker_config=talker, enable_audio_output=False
    )
    torch.manual_seed(SEED)
    model = Qwen2_5OmniForConditionalGeneration(config).eval()
    model.generation_config = _generation_config(tokenizer, sampling=False, stop_tokens=False)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return _mark_done(path)


def build_tiny_audio_flamingo_3(path: str | Path, *, chunk_length: int = 30) -> str:
    """Build a tiny ``AudioFlamingo3ForConditionalGeneration`` checkpoint in ``path``.

    Its generation config samples by default (``do_sample=True``, temperature 0.7), like
    the published ``nvidia/audio-flamingo-3-hf``, so tests catch a backend that forgets to
    force greedy decoding.

    Parameters
    ----------
    path : str or Path
        Output folder (created).
    chunk_length : int
        Audio window of the feature extractor in seconds (30 in the real checkpoints); the
        encoder's ``max_source_positions`` follows (50 per second). A shorter window makes
        the per-request audio work smaller, e.g. for benchmarks.

    Returns
    -------
    str
        The folder, loadable with ``from_pretrained``.
    """
    from transformers import AudioFlamingo3Config
    from transformers import AudioFlamingo3ForConditionalGeneration
    from transformers import AudioFlamingo3Processor

    path = Path(path)
    if _done(path):
        return str(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = _qwen2_tokenizer(["<sound>"], chat_template=AUDIO_FLAMINGO_3_CHAT_TEMPLATE)
    processor = AudioFlamingo3Processor(
        feature_extractor=_whisper_feature_extractor(chunk_length),
        tokenizer=tokenizer,
        chat_template=AUDIO_FLAMINGO_3_CHAT_TEMPLATE,
    )
    config = AudioFlamingo3Config(
        audio_config={
            "num_mel_bins": 128,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "hidden_size": 32,
            "max_source_positions": 50 * chunk_length,
        },
        text_config={"model_type": "qwen2", **_text_config(_vocab_size(tokenizer), tokenizer)},
        audio_token_id=tokenizer.convert_tokens_to_ids("<sound>"),
    )
    torch.manual_seed(SEED)
    model = AudioFlamingo3ForConditionalGeneration(config).eval()
    model.generation_config = _generation_config(tokenizer, sampling=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return _mark_done(path)


def build_tiny_peft_adapter(base_path: str | Path, out_path: str | Path) -> str:
    """Save a LoRA adapter for the language model of the tiny checkpoint in ``base_path``.

    The LoRA ``B`` matrices are filled with non-zero random values (PEFT initialises them to
    zero, which would make the adapter a no-op), so the adapter changes the logits.

    Parameters
    ----------
    base_path : str or Path
        Folder written by one of the ``build_tiny_*`` functions.
    out_path : str or Path
        Output folder for the adapter (created).

    Returns
    -------
    str
        The adapter folder, loadable with ``peft.PeftModel.from_pretrained``.
    """
    import transformers
    from peft import LoraConfig
    from peft import get_peft_model
    from transformers import AutoConfig

    out_path = Path(out_path)
    if _done(out_path):
        return str(out_path)
    config = AutoConfig.from_pretrained(base_path)
    if config.model_type == "qwen2_5_omni":
        model_cls = transformers.Qwen2_5OmniThinkerForConditionalGeneration
    else:
        model_cls = getattr(transformers, config.architectures[0])
    base = model_cls.from_pretrained(base_path, dtype=torch.float32)
    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=r".*language_model.*\.(q_proj|v_proj)",
        lora_dropout=0.0,
    )
    peft_model = get_peft_model(base, lora)
    generator = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    peft_model.save_pretrained(out_path)
    return _mark_done(out_path)
