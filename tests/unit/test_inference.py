"""The inference runner: requests, prompts, batching, the answer journal, resume after SIGKILL."""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cueprobe import io
from cueprobe.backends.base import BackendInfo
from cueprobe.backends.reference import ReferenceBackend
from cueprobe.cli import main
from cueprobe.inference import PREDICTION_COLUMNS
from cueprobe.inference import audio_dependence
from cueprobe.inference import build_requests
from cueprobe.inference import predictions_table
from cueprobe.inference import run_requests
from cueprobe.inference import select_splits
from cueprobe.inference import unique_requests
from cueprobe.interventions import CONCEPT_COLUMNS
from cueprobe.prompts import PromptTemplates

# the schema's default prompt templates
TEMPLATES = PromptTemplates(
    audio_only="What emotion does the speaker express? Answer with exactly one word from: {labels}.",
    with_tokens="What emotion does the speaker express? Answer with exactly one word from: {labels}."
    "\nAcoustic cues extracted from the audio: {tokens}",
)
LABELS = {"angry": ["anger"], "happy": ["joy"], "neutral": [], "sad": ["sadness"]}
LABEL_LIST = "angry, happy, neutral, sad"
VALUES = ["VERY_LOW", "LOW", "MID", "HIGH", "VERY_HIGH"]
REPO = Path(__file__).resolve().parents[2]


def token_block_count(text: str) -> int:
    """How many times the six-concept token block appears in a text."""
    counts = {text.count(f"{c}=") for c in CONCEPT_COLUMNS}
    assert len(counts) == 1, f"a partial token block in {text!r}"
    return counts.pop()


def _manifest(paths: list[Path], n: int) -> pd.DataFrame:
    """n utterances over the given wavs (reused round-robin); 3/4 train, 1/4 test."""
    labels = list(LABELS)
    return pd.DataFrame(
        {
            "utt_id": [f"utt{i:04d}" for i in range(n)][::-1],  # unsorted on purpose
            "path": [str(paths[i % len(paths)]) for i in range(n)],
            "speaker": [f"s{i % 3}" for i in range(n)],
            "gender": "unknown",
            "session": "1",
            # every class in both splits (labels cycle every 4 rows; the reference model
            # refuses a train split without one)
            "split": ["test" if i % 16 in (0, 5, 10, 15) else "train" for i in range(n)],
            "label": [labels[(i % len(paths)) % 4] for i in range(n)],
            "label_raw": "x",
            "duration_s": 0.5,
        }
    )


def _tokens(manifest: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({"utt_id": manifest["utt_id"]})
    for c in CONCEPT_COLUMNS:
        vocab = ["MODAL", "BREATHY"] if c == "VOICE_QUALITY" else VALUES
        if c == "BRIGHTNESS":
            vocab = ["VERY_DARK", "DARK", "MID", "BRIGHT", "VERY_BRIGHT"]
        if c == "DYNAMICS":
            vocab = ["VERY_STATIC", "STATIC", "MID", "DYNAMIC", "VERY_DYNAMIC"]
        out[c] = rng.choice(vocab, len(out))
        if c != "VOICE_QUALITY":
            out[f"score_{c}"] = rng.standard_normal(len(out))
    out["flag"] = ""
    out["token_string"] = [
        "; ".join(f"{c}={row[c]}" for c in CONCEPT_COLUMNS) for _, row in out.iterrows()
    ]
    return out


def _condition(tokens: pd.DataFrame, *, audio_only: bool) -> pd.DataFrame:
    out = tokens[["utt_id", "token_string", *CONCEPT_COLUMNS]].copy()
    if audio_only:
        out.loc[:, ["token_string", *CONCEPT_COLUMNS]] = None
    return out


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> list[Path]:
    import soundfile

    d = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    out = []
    for i, f0 in enumerate([120.0, 180.0, 240.0, 300.0, 150.0, 210.0, 270.0, 330.0]):
        t = np.arange(8000) / 16000
        x = (0.1 + 0.05 * i) * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(len(t))
        out.append(d / f"w{i}.wav")
        soundfile.write(out[-1], x, 16000, subtype="PCM_16")
    return out


@pytest.fixture(scope="module")
def tables(wavs, tmp_path_factory):
    """A 64-utterance corpus on disk: manifest, tokens, aligned and audio_only conditions."""
    d = tmp_path_factory.mktemp("tables")
    manifest = _manifest(wavs, 64)
    tokens = _tokens(manifest)
    io.write_table(manifest, d / "manifest.parquet", "manifest")
    io.write_table(tokens, d / "tokens.parquet", "tokens")
    io.write_table(_condition(tokens, audio_only=False), d / "aligned.parquet", "conditions")
    io.write_table(_condition(tokens, audio_only=True), d / "audio_only.parquet", "conditions")
    return d


@pytest.fixture(scope="module")
def trained(tables) -> dict[str, Path]:
    """Both reference classifiers, trained through the CLI."""
    files = {}
    for kind in ("audio", "tokens"):
        files[kind] = tables / f"reference_{kind}.pkl"
        argv = ["train-reference", "--manifest", str(tables / "manifest.parquet")]
        argv += ["--labels", json.dumps(LABELS), "--C", "1.0", "--seed", "3"]
        argv += ["--out", str(files[kind])]
        if kind == "tokens":
            argv += ["--tokens", str(tables / "tokens.parquet"), "--n-bins", "5"]
            argv += ["--token-template", "{concept}={value}", "--token-separator", "; "]
            argv += ["--token-dropout", "0.3", "--token-corrupt", "0.3"]
        assert main(argv) == 0
    return files


def _journal(out: Path) -> Path:
    return Path(f"{out}.answers.jsonl")


def _infer_argv(tables: Path, out: Path, condition: str, model: dict, *extra: str) -> list[str]:
    return [
        "infer",
        "--manifest",
        str(tables / "manifest.parquet"),
        "--condition",
        str(tables / f"{condition}.parquet"),
        "--model-config",
        json.dumps(model),
        "--labels",
        json.dumps(LABELS),
        "--splits",
        json.dumps(["test"]),
        "--prompts",
        json.dumps({"audio_only": TEMPLATES.audio_only, "with_tokens": TEMPLATES.with_tokens}),
        "--out",
        str(out),
        "--check-out",
        str(out.with_suffix(".check.json")),
        *extra,
    ]


# -- requests ------------------------------------------------------------------------------


def test_build_requests_sorted_filtered_and_formatted(tables):
    manifest = io.read_table(tables / "manifest.parquet", "manifest")
    aligned = io.read_table(tables / "aligned.parquet", "conditions")
    audio_only = io.read_table(tables / "audio_only.parquet", "conditions")
    kw = dict(templates=TEMPLATES, labels=list(LABELS), splits=["test"])
    cued = build_requests(manifest, aligned, **kw)
    plain = build_requests(manifest, audio_only, **kw)
    assert list(cued["utt_id"]) == sorted(manifest.loc[manifest["split"] == "test", "utt_id"])
    assert set(cued["split"]) == {"test"}
    tokens = aligned.set_index("utt_id")["token_string"]
    for _, row in cued.iterrows():
        assert token_block_count(row["prompt"]) == 1
        assert row["prompt"].count(tokens[row["utt_id"]]) == 1
        assert row["prompt"].startswith(TEMPLATES.audio_only.format(labels=LABEL_LIST))
    assert all(token_block_count(p) == 0 for p in plain["prompt"])
    assert set(plain["prompt"]) == {TEMPLATES.audio_only.format(labels=LABEL_LIST)}
    assert plain["prompt_sha"].nunique() == 1
    assert not set(plain["prompt_sha"]) & set(cued["prompt_sha"])
    every = build_requests(
        manifest, aligned, templates=TEMPLATES, labels=list(LABELS), splits=["all"]
    )
    assert len(every) == len(manifest)
    reqs = list(unique_requests({"aligned": cued}, _audio_sha(manifest))[0].values())
    assert [r.utt_id for r in reqs] == [r.audio_key for r in reqs] == list(cued["utt_id"])


def test_build_requests_errors(tables):
    manifest = io.read_table(tables / "manifest.parquet", "manifest")
    aligned = io.read_table(tables / "aligned.parquet", "conditions")
    kw = dict(templates=TEMPLATES, labels=list(LABELS))
    test_ids = manifest.loc[manifest["split"] == "test", "utt_id"]
    with pytest.raises(ValueError, match="16 evaluated utterance"):
        build_requests(manifest, aligned[~aligned["utt_id"].isin(test_ids)], splits=["test"], **kw)
    with pytest.raises(ValueError, match=r"`condition` lacks column\(s\) \['token_string'\]"):
        build_requests(manifest, aligned[["utt_id"]], splits=["test"], **kw)
    # a token condition whose row has no token block was asked the audio-only prompt
    # for it and scored it as that condition (5 "aligned" answers were audio-only ones)
    first = sorted(test_ids)[0]
    for blank in (None, ""):
        holed = aligned.copy()
        holed.loc[holed["utt_id"] == first, "token_string"] = blank
        with pytest.raises(
            ValueError,
            match=rf"1 of 16 evaluated utterance\(s\) have no token_string \('{first}'\)",
        ):
            build_requests(manifest, holed, splits=["test"], **kw)
    audio_only = aligned.assign(token_string=None)  # every row without: audio-only, fine
    assert build_requests(manifest, audio_only, splits=["test"], **kw)["prompt"].nunique() == 1
    # named as a token condition it needs every block; as audio-only, none
    with pytest.raises(ValueError, match=r"16 of 16 evaluated utterance\(s\) have no token"):
        build_requests(manifest, audio_only, splits=["test"], token_blocks=True, **kw)
    with pytest.raises(ValueError, match=r"16 of 16 evaluated utterance\(s\) have a token"):
        build_requests(manifest, aligned, splits=["test"], token_blocks=False, **kw)
    with pytest.raises(ValueError, match="no utterance in split"):
        select_splits(manifest, ["dev"])
    # a split beside one that has utterances was ignored: ["test", "tset"] asked test only
    with pytest.raises(ValueError, match=r"no utterance in split\(s\) \['tset'\]"):
        select_splits(manifest, ["test", "tset"])
    with pytest.raises(ValueError, match="`splits` is empty"):
        select_splits(manifest, [])


def test_a_literal_brace_in_a_template_is_written_twice_or_refused_naming_the_template(tables):
    """A JSON answer format in a template: a single brace opens a field and is refused,
    naming the template (a lone brace was str.format's bare message, naming none); written
    twice, it reaches the model as one brace, in both formats (left untested before)."""
    json_like = 'Answer as {{"emotion": "<one of {labels}>"}}.'
    for single, fields in (
        ('Answer as {"emotion": ...}, one of {labels}.', r"\['\"emotion\"', 'labels'\]"),
        (json_like.replace("{{", "{").replace("}}", "}"), r"\['\"emotion\"'\]"),  # {labels} in it
    ):
        with pytest.raises(
            ValueError,
            match=r"prompts.audio_only must use exactly the fields \['labels'\], it uses "
            rf"{fields}\. a literal brace is written twice",
        ):
            PromptTemplates(audio_only=single)
    for name, text in (
        ("audio_only", "Answer in JSON } one of {labels}."),
        ("with_tokens", 'Answer as {"emotion" one of {labels}. Cues: {tokens}'),
    ):
        with pytest.raises(
            ValueError, match=rf"prompts.{name} is not a valid template \(.*\): a literal brace"
        ):
            PromptTemplates(**{name: text})
    templates = PromptTemplates(json_like, json_like + "\nCues: {tokens}")
    manifest = io.read_table(tables / "manifest.parquet", "manifest")
    kw = dict(templates=templates, labels=list(LABELS), splits=["test"])
    want = f'Answer as {{"emotion": "<one of {LABEL_LIST}>"}}.'
    plain = build_requests(
        manifest, io.read_table(tables / "audio_only.parquet", "conditions"), **kw
    )
    assert set(plain["prompt"]) == {want}
    aligned = io.read_table(tables / "aligned.parquet", "conditions").set_index("utt_id")
    cued = build_requests(manifest, aligned.reset_index(), **kw)
    assert list(cued["prompt"]) == [
        f"{want}\nCues: {aligned.loc[u, 'token_string']}" for u in cued["utt_id"]
    ]


def test_a_template_missing_a_field_is_not_told_to_double_its_braces():
    """The literal-brace advice is for a field too many (a brace of the text read as a
    field); a template that left out {tokens} was told it too, which misleads."""
    for kw, uses in (
        ({"with_tokens": "Pick one of {labels}."}, "['labels']"),
        ({"audio_only": "Pick one."}, "[]"),
    ):
        with pytest.raises(ValueError) as err:
            PromptTemplates(**kw)
        (name,) = kw
        fields = "['labels', 'tokens']" if name == "with_tokens" else "['labels']"
        assert str(err.value) == (
            f"prompts.{name} must use exactly the fields {fields}, it uses {uses}."
        )


def test_an_empty_system_text_is_refused_not_answered_from_the_default_system_turns_journal(
    tables, tmp_path, capsys
):
    """system: '' sent an empty system turn (both backends), null none (the chat template
    then adds its default one: another prompt), but prompt_sha hashed both alike: a run
    with '' after one with null asked nothing and wrote null's answers as its own."""
    from cueprobe.backends.base import Request
    from cueprobe.backends.openai_compat import OpenAIBackend
    from tests.unit.test_backend_openai import ChatServer

    with pytest.raises(ValueError, match=r"prompts.system is '': write null"):
        PromptTemplates(audio_only="{labels}", system="")
    # the backends themselves: "" an empty system turn, None none (the hf test: the same)
    wav = str(io.read_table(tables / "manifest.parquet", "manifest")["path"].iloc[0])
    for system, first in (("", {"role": "system", "content": ""}), (None, None)):
        backend = OpenAIBackend("http://127.0.0.1:9", "m", api_key=None, system_prompt=system)
        messages = backend.payload(Request("u", wav, "Pick.", "u"))["messages"]
        assert messages[0] == first if first else messages[0]["role"] == "user"
        backend.close()
    out = tmp_path / "o.parquet"
    model = {"backend": "openai", "model_id": "m", "concurrency": 1}
    for system, asked in ((None, 16), ("", 0)):
        argv = _infer_argv(tables, out, "audio_only", model)
        argv[argv.index("--prompts") + 1] = json.dumps(
            {"audio_only": TEMPLATES.audio_only, "system": system}
        )
        with ChatServer() as server:
            code = main([*argv, "--base-url", server.url])
            assert len(server.bodies) == asked
        assert code == (0 if system is None else 1)
    assert "prompts.system is ''" in capsys.readouterr().err


def test_a_bumped_backend_version_asks_again_instead_of_reusing_the_old_codes_answers(
    tables, tmp_path, monkeypatch
):
    """BACKEND_VERSION's comment promised that a bump stops a job taking the old code's
    answers from the journal, but the journal keyed answers by the header alone, which
    did not hold it: a fixed prompt rendering kept every old answer. From version 2 on
    the header's decoding holds it; version 1 adds nothing (journals written before it
    was recorded stay valid)."""
    from cueprobe.backends import openai_compat
    from tests.unit.test_backend_openai import ChatServer

    out = tmp_path / "o.parquet"
    argv = _infer_argv(tables, out, "audio_only", {"backend": "openai", "model_id": "m"})
    asked = []
    for version in (1, 1, 2, 2):
        monkeypatch.setattr(openai_compat, "BACKEND_VERSION", version)
        with ChatServer() as server:
            assert main([*argv, "--base-url", server.url]) == 0
            asked.append(len(server.bodies))
    assert asked == [16, 0, 16, 0]
    decoding = io.read_table(out, "predictions")["decoding"].unique().tolist()
    assert decoding == ["greedy (temperature=0); max_tokens=16; seed=0; backend v2"]


# -- running and assembling -------------------------------------------------------------------


def _audio_sha(manifest: pd.DataFrame) -> dict[str, str]:
    return {p: io.file_digest(p) for p in manifest["path"]}


def test_run_requests_batches_and_skips_done(tables, trained):
    manifest = io.read_table(tables / "manifest.parquet", "manifest")
    aligned = io.read_table(tables / "aligned.parquet", "conditions")
    frame = build_requests(
        manifest, aligned, templates=TEMPLATES, labels=list(LABELS), splits=["test"]
    )
    requests, _ = unique_requests({"aligned": frame}, _audio_sha(manifest))
    keys = list(requests)
    backend = ReferenceBackend.from_files([trained["tokens"]])
    batches = []
    n = run_requests(
        backend,
        requests,
        batch_size=5,
        done=set(keys[:3]),
        on_batch=lambda k, b, a: batches.append((list(k), [r.utt_id for r in b], list(a))),
    )
    assert n == 13
    assert [len(ids) for _, ids, _ in batches] == [5, 5, 3]
    assert [k for ks, _, _ in batches for k in ks] == keys[3:]
    assert [u for _, ids, _ in batches for u in ids] == list(frame["utt_id"][3:])
    assert [a for _, _, ans in batches for a in ans] == backend.generate(
        [requests[k] for k in keys[3:]]
    )
    with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
        run_requests(backend, requests, batch_size=0, done=(), on_batch=print)


def test_unique_requests_asks_a_shared_prompt_once_utterance_major(tables):
    manifest = io.read_table(tables / "manifest.parquet", "manifest")
    aligned = io.read_table(tables / "aligned.parquet", "conditions")
    audio_only = io.read_table(tables / "audio_only.parquet", "conditions")
    kw = dict(templates=TEMPLATES, labels=list(LABELS), splits=["test"])
    other = aligned.assign(token_string=aligned["token_string"].str.lower())
    frames = {
        "aligned": build_requests(manifest, aligned, **kw),
        "copy": build_requests(manifest, aligned, **kw),  # like corrupt_p0_s*: same prompts
        "lower": build_requests(manifest, other, **kw),
        "audio_only": build_requests(manifest, audio_only, **kw),
    }
    shas = _audio_sha(manifest)
    requests, keys = unique_requests(frames, shas)
    assert len(requests) == 3 * 16  # aligned == copy: asked once
    assert keys["aligned"].tolist() == keys["copy"].tolist()
    assert not set(keys["aligned"]) & set(keys["lower"])
    utts = [r.utt_id for r in requests.values()]
    assert utts == sorted(utts)  # utterance-major: one audio file's requests are neighbours
    first = [requests[k].prompt for k in list(requests)[:3]]
    assert first == [
        f["prompt"].iloc[0] for f in (frames["aligned"], frames["lower"], frames["audio_only"])
    ]
    # the same utterance and prompt with other audio bytes is another model call
    moved = {p: "0" * 16 for p in shas}
    again, _ = unique_requests(frames, moved)
    assert not set(again) & set(requests)
    with pytest.raises(ValueError, match="no audio hash for"):
        unique_requests(frames, {})


def test_predictions_table_parses_and_marks_errors():
    frame = pd.DataFrame(
        {
            "utt_id": ["a", "b", "c", "d"],
            "prompt_sha": ["p"] * 4,
            "split": ["test"] * 4,
            "label": ["sad", "sad", "angry", "happy"],
        }
    )
    answers = {"a": "Sad.", "b": "I hear sadness", "c": None, "d": "no idea"}
    info = BackendInfo("m", "r1", "greedy")
    out = predictions_table(frame, answers, info=info, labels=LABELS)
    assert list(out.columns) == list(PREDICTION_COLUMNS)
    assert out["pred"].tolist() == ["sad", "sad", "", ""]
    assert out["parse_status"].tolist() == ["exact", "mention", "error", "unparsed"]
    assert pd.isna(out["raw_output"].iloc[2])  # no answer: null, as the table reads back
    assert out["raw_output"].dtype == "str"
    assert set(out["revision"]) == {"r1"}
    io.validate_table(out, "predictions")
    with pytest.raises(ValueError, match="1 request\\(s\\) have no answer: 'd'"):
        predictions_table(frame, {k: answers[k] for k in "abc"}, info=info, labels=LABELS)


def test_predictions_table_parses_the_answer_a_pattern_picks_out():
    frame = pd.DataFrame(
        {"utt_id": ["a", "b", "c"], "prompt_sha": ["p"] * 3, "split": ["test"] * 3,
         "label": ["sad", "sad", "angry"]}
    )  # fmt: skip
    thought = "<think>Angry? No: the voice is low and slow.</think> Sad."
    answers = {"a": thought, "b": "<think>Angry? The voice is", "c": None}
    info = BackendInfo("m", "r1", "greedy")
    plain = predictions_table(frame, answers, info=info, labels=LABELS)
    assert plain["parse_status"].tolist() == ["unparsed", "mention", "error"]  # b: "angry"
    out = predictions_table(
        frame, answers, info=info, labels=LABELS, answer_pattern=r"(?s)</think>(.*)"
    )
    assert out["pred"].tolist() == ["sad", "", ""]
    assert out["parse_status"].tolist() == ["exact", "unparsed", "error"]
    assert out["raw_output"].tolist()[:2] == [thought, answers["b"]]  # kept whole
    with pytest.raises(ValueError, match="has 2 groups: name the answer's"):
        predictions_table(frame, answers, info=info, labels=LABELS, answer_pattern="(a)|(b)")
    with pytest.raises(ValueError, match="answer_pattern is empty: leave it null"):
        predictions_table(frame, answers, info=info, labels=LABELS, answer_pattern="")
    # the last line: finditer ends `(?m)^.*$` with an empty match after the final newline
    lines = {"a": "Angry, or sad?\nsad\n", "b": "happy\n", "c": None}
    out = predictions_table(frame, lines, info=info, labels=LABELS, answer_pattern=r"(?m)^.*$")
    assert out["pred"].tolist() == ["sad", "happy", ""]


def test_audio_dependence_flags_constant_and_prompt_determined_answers():
    n = 20
    constant = pd.DataFrame({"pred": ["sad"] * n, "prompt_sha": [f"p{i}" for i in range(n)]})
    check = audio_dependence(constant)
    assert check.invariant and "same answer 'sad'" in check.reason
    # two prompts, each always answered the same way: the prompt decides
    by_prompt = pd.DataFrame({"pred": ["sad", "happy"] * 10, "prompt_sha": ["a", "b"] * 10})
    check = audio_dependence(by_prompt)
    assert check.invariant and "prompt alone decides" in check.reason
    assert check.prompt_determined_share == 1.0 and check.n_shared_prompt == 20
    assert not audio_dependence(by_prompt, min_shared=21).invariant
    varied = by_prompt.assign(pred=["sad", "happy", "happy", "sad"] * 5)
    check = audio_dependence(varied)
    assert not check.invariant and check.reason == ""
    assert check.n_distinct_pred == 2 and check.majority_share == 0.5
    # a prompt per utterance (every token condition) shares nothing: no "prompt decides"
    own = varied.assign(prompt_sha=[f"p{i}" for i in range(20)])
    check = audio_dependence(own)
    assert not check.invariant and check.n_shared_prompt == 0


# -- the CLI ---------------------------------------------------------------------------------


def test_infer_cli_reference(tables, trained, tmp_path, caplog):
    model = {"backend": "reference", "batch_size": 4}
    for condition, files in (("audio_only", [trained["audio"]]), ("aligned", [trained["tokens"]])):
        out = tmp_path / f"{condition}.parquet"
        argv = _infer_argv(tables, out, condition, model, "--model-files", *map(str, files))
        assert main(argv) == 0
        pred = io.read_table(out, "predictions")
        assert len(pred) == 16 and set(pred["split"]) == {"test"}
        assert (pred["raw_output"] == pred["pred"]).all()  # answers are label texts
        assert set(pred["parse_status"]) == {"exact"}
        assert _journal(out).exists()  # kept: a later run reuses its answers
        check = json.loads(out.with_suffix(".check.json").read_text())
        assert check["n"] == 16 and check["parse_status"] == {"exact": 16}


def test_infer_cli_answer_pattern_reparses_the_journal(tables, trained, tmp_path, capsys):
    """A model's answer_pattern picks the answer out of each output; a re-run with another
    pattern parses the journal's answers again (none is asked twice), and a pattern that
    is no regex fails before the model is asked."""
    out = tmp_path / "aligned.parquet"
    files = ("--model-files", str(trained["tokens"]))
    model = {"backend": "reference", "batch_size": 4}
    assert main(_infer_argv(tables, out, "aligned", model, *files)) == 0
    journal = _journal(out).read_text()
    whole = io.read_table(out, "predictions")
    # the reference model answers a label: a pattern that takes the last word parses
    # them as before, one for another label leaves every answer unparsed
    for pattern, same in ((r"(?P<answer>\w+)$", True), (r"^(xyz)$", False)):
        assert (
            main(_infer_argv(tables, out, "aligned", model | {"answer_pattern": pattern}, *files))
            == 0
        )
        assert _journal(out).read_text() == journal
        pred = io.read_table(out, "predictions")
        pd.testing.assert_series_equal(pred["raw_output"], whole["raw_output"])
        if same:
            pd.testing.assert_frame_equal(pred, whole)
        else:
            assert set(pred["parse_status"]) == {"unparsed"} and set(pred["pred"]) == {""}
    out.unlink()
    bad = model | {"answer_pattern": "(?s)</think>(.*"}
    assert main(_infer_argv(tables, out, "aligned", bad, *files)) == 1
    assert "answer_pattern '(?s)</think>(.*' is not a regular expression" in capsys.readouterr().err
    assert not out.exists()


def test_infer_cli_many_conditions_and_shards_equal_one_condition_jobs(
    tables, trained, tmp_path, caplog, capsys
):
    model = {"backend": "reference", "batch_size": 4}
    files = ["--model-files", str(trained["tokens"])]
    single = {}
    for c in ("aligned", "audio_only"):
        single[c] = tmp_path / f"one_{c}.parquet"
        assert main(_infer_argv(tables, single[c], c, model, *files)) == 0
    # one job, both conditions (the tokens classifier answers audio_only through dropout)
    argv = _infer_argv(tables, tmp_path / "x.parquet", "aligned", model, *files)
    cut = argv.index("--condition")
    argv[cut + 1 : cut + 2] = [str(tables / f"{c}.parquet") for c in ("aligned", "audio_only")]
    both = {c: tmp_path / f"both_{c}.parquet" for c in ("aligned", "audio_only")}
    cut = argv.index("--out")
    argv[cut:] = ["--out", *map(str, both.values())]
    argv += ["--check-out", *(str(v.with_suffix(".check.json")) for v in both.values())]
    argv += files
    with caplog.at_level("INFO"):
        assert main(argv) == 0
    assert "2 condition(s), 32 prompts, 32 distinct model calls" in caplog.text
    for c in both:
        pd.testing.assert_frame_equal(
            io.read_table(both[c], "predictions"), io.read_table(single[c], "predictions")
        )
        assert json.loads(both[c].with_suffix(".check.json").read_text())["n"] == 16
    # the same in two utterance shards, joined by gather-predictions
    shards = []
    for k in range(2):
        shards.append(tmp_path / f"shard{k}.parquet")
        shard_argv = [*argv[: argv.index("--out")], *files, "--out", str(shards[-1])]
        assert main([*shard_argv, "--shard", str(k), "--n-shards", "2"]) == 0
        part = io.read_table(shards[-1], "prediction_shard")
        assert set(part["condition"]) == set(both) and 0 < len(part) < 32
    joined = {c: tmp_path / f"joined_{c}.parquet" for c in both}
    gather = ["gather-predictions", "--parts", *map(str, shards), "--condition", *joined]
    gather += ["--out", *map(str, joined.values())]
    gather += ["--check-out", *(str(v.with_suffix(".check.json")) for v in joined.values())]
    assert main(gather) == 0
    for c in both:
        pd.testing.assert_frame_equal(
            io.read_table(joined[c], "predictions"), io.read_table(single[c], "predictions")
        )
        # the same bytes too (raw_output was Arrow string unsharded, large_string gathered)
        assert joined[c].read_bytes() == single[c].read_bytes(), c
    # a shard given twice: refused naming the shard tables, before anything is written
    # (the duplicate was found writing the first output, and named that)
    redo = {c: tmp_path / f"redo_{c}.parquet" for c in both}
    again = ["gather-predictions", "--parts", str(shards[0]), str(shards[0]), str(shards[1])]
    again += ["--condition", *redo, "--out", *map(str, redo.values())]
    again += ["--check-out", *(str(v.with_suffix(".check.json")) for v in redo.values())]
    assert main(again) == 1
    err = capsys.readouterr().err
    assert "rows for condition" in err and f"in the shard tables ['{shards[0]}']" in err
    assert not [v for v in redo.values() if v.exists()]
    # paths that do not pair up are refused, naming the flag
    assert main([*argv[: argv.index("--check-out")], *files, "--check-out", "one.json"]) == 1
    assert "--check-out needs one path per --condition (2), got 1." in capsys.readouterr().err
    assert main([*shard_argv, "--shard", "0", "--n-shards", "2", "--check-out", "a"]) == 1
    gather[gather.index("--out") + 1 : gather.index("--check-out")] = [str(tmp_path / "one")]
    assert main(gather) == 1
    assert "--out needs one path per --condition (2), got 1." in capsys.readouterr().err


def test_gathered_shards_are_one_whole_layout_even_with_more_shards_than_utterances(
    tables, trained, tmp_path, capsys
):
    """More shards than utterances leaves some shard tables empty: gathered, they give
    the unsharded table. A shard table left out (or one of another `shards:` setting,
    not re-run) lost its utterances with exit code 0; it is refused, naming the shards."""
    model = {"backend": "reference", "batch_size": 4}
    files = ["--model-files", str(trained["audio"])]
    single = tmp_path / "single.parquet"
    assert main(_infer_argv(tables, single, "audio_only", model, *files)) == 0

    def shard(k: int, n: int) -> Path:
        out = tmp_path / f"n{n}.shard{k}.parquet"
        argv = _infer_argv(tables, out, "audio_only", model, *files)
        del argv[argv.index("--check-out") : argv.index("--check-out") + 2]
        assert main([*argv, "--shard", str(k), "--n-shards", str(n)]) == 0
        return out

    def gather(parts: list[Path]) -> int:
        out = tmp_path / "joined.parquet"
        out.unlink(missing_ok=True)
        argv = ["gather-predictions", "--parts", *map(str, parts), "--condition", "audio_only"]
        return main([*argv, "--out", str(out), "--check-out", str(tmp_path / "joined.json")])

    n = 20  # 16 evaluated utterances
    parts = [shard(k, n) for k in range(n)]
    sizes = [len(io.read_table(p, "prediction_shard")) for p in parts]
    assert sum(sizes) == 16 and 0 in sizes
    assert gather(parts) == 0
    assert (tmp_path / "joined.parquet").read_bytes() == single.read_bytes()
    full, empty = sizes.index(max(sizes)), sizes.index(0)
    for k in (full, empty, n - 1):  # an empty one too: nothing tells it from a full one
        assert gather(parts[:k] + parts[k + 1 :]) == 1
        assert f"shard(s) [{k}] of {n} are not among the {n - 1} shard tables" in (
            capsys.readouterr().err
        )
        assert not (tmp_path / "joined.parquet").exists()
    # the tables of two layouts (`shards: 2`, then 20 with the first two not re-run)
    assert gather([shard(0, 2), shard(1, 2), *parts[2:]]) == 1
    assert "the shard tables are of 2 layouts (--n-shards [2, 20])" in capsys.readouterr().err


def test_a_shard_table_given_twice_in_place_of_another_is_counted_as_given():
    """`--parts s0 s0` for two shards: shard 1 is missing, and the message counted 1
    shard table given (the distinct paths), not the 2 the command line gave."""
    from cueprobe.cli.inference import _check_layout

    tag = {"shard": 0, "n_shards": 2}
    with pytest.raises(
        ValueError, match=r"shard\(s\) \[1\] of 2 are not among the 2 shard tables given \(s0,"
    ):
        _check_layout([Path("s0"), Path("s0")], [tag, tag])


def test_shard_tables_of_an_older_cueprobe_are_gathered_with_a_warning(
    tables, trained, tmp_path, caplog
):
    """Shard tables written before they recorded their shard (a run upgraded between its
    infer and gather jobs) are gathered as before, unchecked and said so: they crashed
    the layout check (None beside a number), alone or beside a newer one."""
    model = {"backend": "reference", "batch_size": 4}
    files = ["--model-files", str(trained["audio"])]
    single = tmp_path / "single.parquet"
    assert main(_infer_argv(tables, single, "audio_only", model, *files)) == 0
    parts = []
    for k in range(2):
        parts.append(tmp_path / f"shard{k}.parquet")
        argv = _infer_argv(tables, parts[-1], "audio_only", model, *files)
        del argv[argv.index("--check-out") : argv.index("--check-out") + 2]
        assert main([*argv, "--shard", str(k), "--n-shards", "2"]) == 0
    out = tmp_path / "joined.parquet"
    gather = ["gather-predictions", "--parts", *map(str, parts), "--condition", "audio_only"]
    gather += ["--out", str(out), "--check-out", str(tmp_path / "joined.json")]
    for untagged in ([parts[1]], parts):  # beside a newer one, then all of them
        for path in untagged:
            table = io.read_table(path, "prediction_shard")
            table.attrs = {}  # as an older cueprobe wrote it
            io.write_table(table, path, "prediction_shard")
        out.unlink(missing_ok=True)
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(gather) == 0
        assert f"{len(untagged)} shard table(s) record no shard (written by an older " in (
            caplog.text
        )
        assert f"e.g. {untagged[0]})" in caplog.text
        assert out.read_bytes() == single.read_bytes()


def test_embeddings_computed_once_serve_training_and_inference(
    tables, trained, tmp_path, monkeypatch, capsys
):
    from cueprobe.backends import reference

    table = tmp_path / "logmel.parquet"
    assert (
        main(
            ["embed-reference", "--manifest", str(tables / "manifest.parquet"), "--out", str(table)]
        )
        == 0
    )
    emb = io.read_table(table, "embeddings")
    manifest = io.read_table(tables / "manifest.parquet", "manifest")
    assert emb["utt_id"].tolist() == manifest["utt_id"].tolist() and emb.shape[1] == 1 + 80
    # training from the table gives the very classifier that training from the audio gives
    out = tmp_path / "tokens.pkl"
    argv = ["train-reference", "--manifest", str(tables / "manifest.parquet")]
    argv += ["--embeddings", str(table), "--labels", json.dumps(LABELS), "--C", "1.0"]
    argv += ["--seed", "3", "--out", str(out), "--tokens", str(tables / "tokens.parquet")]
    argv += ["--n-bins", "5", "--token-template", "{concept}={value}", "--token-separator", "; "]
    argv += ["--token-dropout", "0.3", "--token-corrupt", "0.3"]
    assert main(argv) == 0
    assert out.read_bytes() == trained["tokens"].read_bytes()
    # and inference with the table reads no audio, with the same answers
    model = {"backend": "reference", "batch_size": 4}
    plain = tmp_path / "plain.parquet"
    assert (
        main(_infer_argv(tables, plain, "aligned", model, "--model-files", str(trained["tokens"])))
        == 0
    )

    def no_audio(*args, **kwargs):
        raise AssertionError("read audio although the embeddings were given")

    monkeypatch.setattr(reference, "embed_file", no_audio)
    cached = tmp_path / "cached.parquet"
    files = ["--model-files", str(trained["tokens"]), str(table)]
    assert main(_infer_argv(tables, cached, "aligned", model, *files)) == 0
    a, b = io.read_table(plain, "predictions"), io.read_table(cached, "predictions")
    assert a["pred"].tolist() == b["pred"].tolist()
    assert a["revision"][0] != b["revision"][0]  # the revision names every file it used
    # an embeddings table that misses a training utterance fails, naming it
    first_train = manifest.loc[manifest["split"] == "train", "utt_id"].iloc[0]
    io.write_table(emb[emb["utt_id"] != first_train], tmp_path / "short.parquet", "embeddings")
    argv[argv.index(str(table))] = str(tmp_path / "short.parquet")
    assert main(argv) == 1
    assert f"no embedding for 1 utterance(s): {first_train!r}" in capsys.readouterr().err


def test_a_training_utterance_without_embedding_is_left_out_by_name(tables, tmp_path, caplog):
    """One NaN in the embeddings (unreadable audio) made L-BFGS stop ABNORMAL and the
    classifier chance-level (training accuracy 0.95 -> 0.25), exit code 0."""
    from cueprobe.backends.reference import ReferenceClassifier

    table = tmp_path / "logmel.parquet"
    manifest_path = str(tables / "manifest.parquet")
    assert main(["embed-reference", "--manifest", manifest_path, "--out", str(table)]) == 0
    emb = io.read_table(table, "embeddings")
    manifest = io.read_table(manifest_path, "manifest")
    first_train = manifest.loc[manifest["split"] == "train", "utt_id"].sort_values().iloc[0]
    nan = emb.copy()
    nan.loc[nan["utt_id"] == first_train, "logmel_007"] = np.nan
    io.write_table(nan, tmp_path / "nan.parquet", "embeddings")
    io.write_table(
        manifest[manifest["utt_id"] != first_train], tmp_path / "without.parquet", "manifest"
    )

    def train(manifest_file, embeddings_file, out):
        argv = ["train-reference", "--manifest", str(manifest_file)]
        argv += ["--embeddings", str(embeddings_file), "--labels", json.dumps(LABELS)]
        argv += ["--C", "1.0", "--seed", "3", "--out", str(out)]
        assert main(argv) == 0
        return ReferenceClassifier.load(out)

    got = train(manifest_path, tmp_path / "nan.parquet", tmp_path / "a.pkl")
    assert "1 training utterance(s) left out: no audio embedding" in caplog.text
    assert repr(first_train) in caplog.text
    want = train(tmp_path / "without.parquet", table, tmp_path / "b.pkl")
    assert got.n_train == want.n_train == (manifest["split"] == "train").sum() - 1
    np.testing.assert_allclose(got.model["coef"], want.model["coef"], rtol=1e-8)
    assert "stopped early" not in caplog.text


def test_infer_cli_refuses_reference_on_train_and_tokens_without_classifier(
    tables, trained, tmp_path, capsys
):
    out = tmp_path / "x.parquet"
    argv = _infer_argv(
        tables, out, "aligned", {"backend": "reference"}, "--model-files", str(trained["audio"])
    )
    assert main(argv) == 1
    assert "carries token blocks (64 rows) but no tokens classifier" in capsys.readouterr().err
    argv[argv.index("--splits") + 1] = json.dumps(["train", "test"])
    assert main(argv) == 1
    assert "must not be scored on it" in capsys.readouterr().err


def test_a_second_job_on_a_journal_in_use_fails_at_once(tables, trained, tmp_path, capsys):
    """A job left running after its Snakemake died and a new run's job asked the same
    remaining prompts side by side (289 of 673 twice on the demo): the second now stops,
    naming the holder."""
    import fcntl

    model = {"backend": "reference", "batch_size": 4}
    out = tmp_path / "p.parquet"
    argv = _infer_argv(tables, out, "aligned", model, "--model-files", str(trained["tokens"]))
    lock = _journal(out).with_name(f".{_journal(out).name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242 on node7 (since 2026-11-24T10:00:00Z)\n")
        held.flush()
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{_journal(out)} is in use by pid 4242 on node7" in err and "Wait for it" in err
    assert not out.exists()
    assert main(argv) == 0  # released: the job runs
    # the holder's time in UTC, whatever the job's time zone (it was local time, unmarked)
    stamp = re.fullmatch(r"pid \d+ on \S+ \(since (\S+)\)\n", lock.read_text())[1]
    written = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z")
    now = datetime.datetime.now(datetime.UTC)
    assert abs((now - written).total_seconds()) < 600


def test_a_job_whose_inputs_change_under_it_writes_no_predictions(
    tables, trained, tmp_path, monkeypatch, capsys
):
    """An orphaned job of an earlier run (n_bins 3) finished after the new run (n_bins 5)
    and wrote its predictions over the new ones; the next run took them as up to date."""
    import shutil

    import cueprobe.inference as inference

    here = tmp_path / "tables"
    here.mkdir()
    for name in ("manifest.parquet", "aligned.parquet"):
        shutil.copy(tables / name, here / name)
    model = {"backend": "reference", "batch_size": 4}
    out = tmp_path / "p.parquet"
    argv = _infer_argv(here, out, "aligned", model, "--model-files", str(trained["tokens"]))
    run = inference.run_requests

    def rewritten_meanwhile(*a, **kw):
        n = run(*a, **kw)
        table = io.read_table(here / "aligned.parquet", "conditions")
        io.write_table(table, here / "aligned.parquet", "conditions")  # a new run's
        return n

    monkeypatch.setattr(inference, "run_requests", rewritten_meanwhile)
    assert main(argv) == 1
    assert "changed while this job ran" in capsys.readouterr().err
    assert not out.exists() and _journal(out).read_text().count("raw_output") == 16
    monkeypatch.setattr(inference, "run_requests", run)
    assert main(argv) == 0  # the answers are journaled: nothing is asked again
    assert io.read_table(out, "predictions")["utt_id"].nunique() == 16


def test_a_damaged_journal_line_is_named_and_a_torn_header_skipped(
    tables, trained, tmp_path, capsys
):
    """A garbled line mid-journal failed every later run with 'Unterminated string ...'
    (no file, no line); a torn header line at the end failed `_setup_header` before the
    torn-line repair could run."""
    from cueprobe.cli.inference import _setup_header

    model = {"backend": "reference", "batch_size": 4}
    out = tmp_path / "p.parquet"
    argv = _infer_argv(tables, out, "aligned", model, "--model-files", str(trained["tokens"]))
    assert main(argv) == 0
    journal = _journal(out)
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join([*lines[:3], lines[3][:20] + "\n", *lines[4:]]))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{journal}, line 4, is damaged" in err and f"head -n 3 {journal}" in err
    setup = {"model": "x"}
    header = {"header": {"model_id": "m", "revision": "r", "decoding": "d"}, "setup": setup}
    journal.write_text(json.dumps(header) + "\n" + json.dumps(header)[:30])
    assert _setup_header(journal, setup) == header["header"]


def test_run_requests_logs_its_progress(caplog):
    """An out-of-memory kill left a log whose only line was '1356 request(s), 0 already
    answered': nothing said how far the journal had got."""

    class Echo:
        def generate(self, batch):
            return ["sad"] * len(batch)

    requests = {f"k{i}": object() for i in range(100)}
    with caplog.at_level("INFO"):
        run_requests(Echo(), requests, batch_size=5, done=set(), on_batch=lambda *a: None)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("answered")]
    assert len(lines) == 19 and lines[0].startswith("answered 5/100 (5%")
    assert "a re-run resumes from here" in lines[0]


def test_infer_cli_resumes_from_its_journal(tables, trained, tmp_path, caplog):
    model = {"backend": "reference", "batch_size": 4}
    files = ["--model-files", str(trained["tokens"])]
    full = tmp_path / "full.parquet"
    assert main(_infer_argv(tables, full, "aligned", model, *files)) == 0
    expected = io.read_table(full, "predictions")
    # a journal from an interrupted run: a header, 5 answers (one deliberately odd, to
    # show it is kept, not recomputed) and a torn last line
    out = tmp_path / "resumed.parquet"
    header = {
        "header": {
            "model_id": expected["model_id"][0],
            "revision": expected["revision"][0],
            "decoding": "argmax",
        }
    }
    manifest = io.read_table(tables / "manifest.parquet", "manifest")
    sha = _audio_sha(manifest)
    path = manifest.set_index("utt_id")["path"]
    rows = [
        {
            "utt_id": u,
            "prompt_sha": s,
            "audio_sha": sha[path[u]],
            "raw_output": "happy" if i == 0 else r,
        }
        for i, (u, s, r) in enumerate(
            zip(
                expected["utt_id"][:5],
                expected["prompt_sha"][:5],
                expected["raw_output"][:5],
                strict=True,
            )
        )
    ]
    part = _journal(out)
    part.write_text("".join(json.dumps(r) + "\n" for r in [header, *rows]) + '{"utt_id": "utt0')
    with caplog.at_level("INFO"):
        assert main(_infer_argv(tables, out, "aligned", model, *files)) == 0
    assert "5 already answered, 11 to go" in caplog.text
    got = io.read_table(out, "predictions")
    assert got["raw_output"][0] == "happy"
    pd.testing.assert_frame_equal(got.iloc[1:], expected.iloc[1:])
    # a journal of another model revision: its answers are not used, but kept (a new
    # section under this run's header follows them)
    old = {"header": {**header["header"], "revision": "old"}}
    part.write_text(json.dumps(old) + "\n" + json.dumps(rows[0]) + "\n")
    caplog.clear()
    assert main(_infer_argv(tables, out, "aligned", model, *files)) == 0
    assert "its answers are kept for those settings, and these are asked anew" in caplog.text
    pd.testing.assert_frame_equal(io.read_table(out, "predictions"), expected)
    lines = [json.loads(line) for line in part.read_text().splitlines()]
    assert lines[:2] == [old, rows[0]] and lines[2] == header and len(lines) == 3 + 16


def test_a_journal_from_before_resolved_revisions_is_kept_and_relabelled(tmp_path, caplog):
    """A journal written when the header said ``main`` (not yet ``main@<sha>``) holds the
    answers of the checkpoint in the cache: they are kept and its header relabelled; the
    answers of another branch or commit are not used (and stay in the journal)."""
    from cueprobe.cli.inference import _read_journal

    new = {"model_id": "Qwen/Qwen2-Audio-7B-Instruct", "revision": "main@0a1b2c", "decoding": "d"}
    row = {"utt_id": "u1", "prompt_sha": "p", "audio_sha": "a", "raw_output": "sad"}
    journal = tmp_path / "x.answers.jsonl"
    # a local adapter's digest, new in the decoding: the same answers
    local = {**new, "decoding": "d; adapter=/ckpt/af3-think@main@local-0123456789ab"}
    old = {"header": {**local, "decoding": "d; adapter=/ckpt/af3-think@main"}}
    journal.write_text(json.dumps(old) + "\n" + json.dumps(row) + "\n")
    assert _read_journal(journal, local) == ({"u1\tp\ta": "sad"}, True)
    for old_revision, kept in (("main", True), ("v1", False), ("main@ffff", False)):
        old = {"header": {**new, "revision": old_revision}}
        journal.write_text(json.dumps(old) + "\n" + json.dumps(row) + "\n")
        caplog.clear()
        with caplog.at_level("WARNING"):
            answers, in_section = _read_journal(journal, new)
        assert answers == ({"u1\tp\ta": "sad"} if kept else {}) and in_section == kept
        if kept:
            assert json.loads(journal.read_text().splitlines()[0]) == {"header": new}
            assert "recorded from now on as 'main@0a1b2c'" in caplog.text
        else:
            assert json.loads(journal.read_text().splitlines()[0]) == old
            assert "asked anew" in caplog.text


def test_answers_survive_a_setting_changed_and_back_and_a_new_shard_layout(tables, tmp_path):
    """A decoding change deleted the journal, so changing it back asked every prompt
    again; a model sharded anew (journal/tokens.shard{k}.jsonl) asked everything its
    unsharded journal held (hours of GPU time on a real corpus)."""
    from tests.unit.test_backend_openai import ChatServer

    journal = tmp_path / "journal" / "tokens.jsonl"
    out = tmp_path / "o.parquet"
    for max_new_tokens, asked in ((16, 16), (32, 16), (16, 0)):
        model = {"backend": "openai", "model_id": "m", "max_new_tokens": max_new_tokens}
        with ChatServer() as server:
            argv = _infer_argv(tables, out, "aligned", model | {"base_url": server.url})
            assert main([*argv, "--journal", str(journal)]) == 0
            assert len(server.bodies) == asked, max_new_tokens
    with ChatServer() as server:  # the first of two shards: all answered unsharded
        argv = _infer_argv(tables, out, "aligned", model | {"base_url": server.url})
        shard = ["--journal", str(journal.with_name("tokens.shard0.jsonl"))]
        argv = [a for a in argv if a not in ("--check-out", str(out.with_suffix(".check.json")))]
        assert main([*argv, *shard, "--n-shards", "2", "--shard", "0"]) == 0
        assert len(server.bodies) == 0
    assert not journal.with_name("tokens.shard0.jsonl").read_text().count("raw_output")


def test_infer_cli_warns_when_predictions_ignore_the_audio(tables, trained, tmp_path, caplog):
    # one wav for every utterance: the audio cannot make a difference
    manifest = io.read_table(tables / "manifest.parquet", "manifest")
    d = tmp_path / "same"
    d.mkdir()
    io.write_table(manifest.assign(path=manifest["path"][0]), d / "manifest.parquet", "manifest")
    (d / "audio_only.parquet").write_bytes((tables / "audio_only.parquet").read_bytes())
    out = tmp_path / "same.parquet"
    argv = _infer_argv(
        d, out, "audio_only", {"backend": "reference"}, "--model-files", str(trained["audio"])
    )
    with caplog.at_level("WARNING"):
        assert main(argv) == 0
    assert "PREDICTIONS DO NOT VARY WITH THE AUDIO" in caplog.text
    check = json.loads(out.with_suffix(".check.json").read_text())
    assert check["invariant"] is True and check["n_distinct_pred"] == 1


def test_infer_cli_openai_server_down_keeps_the_journal(tables, tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = {
        "backend": "openai",
        "model_id": "m",
        "base_url": f"http://127.0.0.1:{port}/v1",
        "max_retries": 0,
    }
    out = tmp_path / "o.parquet"
    with pytest.raises(SystemExit, match=f"server at http://127.0.0.1:{port}/v1 failed 1 attempt"):
        main(_infer_argv(tables, out, "aligned", model))
    assert not out.exists()
    assert json.loads(_journal(out).read_text().splitlines()[0])["header"]["model_id"] == "m"


def test_infer_cli_records_a_rejected_request_as_error(tables, tmp_path):
    from tests.unit.test_backend_openai import ChatServer

    with ChatServer(script=[(400, {"error": "audio too long"}, {})]) as server:
        model = {"backend": "openai", "model_id": "m", "base_url": server.url, "concurrency": 1}
        out = tmp_path / "o.parquet"
        assert main(_infer_argv(tables, out, "aligned", model)) == 0
    pred = io.read_table(out, "predictions")
    first = pred["utt_id"].min()  # requests go utterance-major: the first one was rejected
    errors = pred[pred["parse_status"] == "error"]
    assert errors["utt_id"].tolist() == [first]
    assert errors["raw_output"].isna().all() and errors["pred"].tolist() == [""]
    assert len(pred) == 16 and pred["raw_output"].notna().sum() == 15
    with ChatServer() as server:  # the forced re-run asks the rejected call only
        model = model | {"base_url": server.url}
        assert main(_infer_argv(tables, out, "aligned", model)) == 0
        assert len(server.bodies) == 1
    pred = io.read_table(out, "predictions")
    assert (pred["parse_status"] != "error").all()


def test_infer_cli_a_request_the_server_keeps_failing_does_not_block_the_job(
    tables, tmp_path, capsys
):
    """A request the server fails on every retry stopped the job on every run, and the
    answers of its batch were lost; a server failing everything still stops it."""
    from tests.unit.test_backend_openai import ChatServer

    model = {"backend": "openai", "model_id": "m", "concurrency": 1, "max_retries": 0}
    out = tmp_path / "o.parquet"
    with ChatServer(script=[(500, {"error": "decoder crashed"}, {})]) as server:
        assert main(_infer_argv(tables, out, "aligned", model | {"base_url": server.url})) == 0
    pred = io.read_table(out, "predictions")
    assert (pred["parse_status"] == "error").sum() == 1 and len(pred) == 16
    with ChatServer() as server:  # the next run asks it again
        assert main(_infer_argv(tables, out, "aligned", model | {"base_url": server.url})) == 0
        assert len(server.bodies) == 1
    # a server down after three answers (one batch of 16): the job stops, keeping them
    out = tmp_path / "down.parquet"
    with ChatServer(script=[None] * 3 + [(503, {}, {})] * 50) as server:
        with pytest.raises(SystemExit, match="5 requests in a row have failed"):
            main(_infer_argv(tables, out, "aligned", model | {"base_url": server.url}))
    journal = _journal(out).read_text().splitlines()
    # the three answers, and the four failures before the fifth in a row (asked again)
    assert [json.loads(line)["raw_output"] is None for line in journal[1:]] == [False] * 3 + [
        True
    ] * 4
    with ChatServer() as server:
        assert main(_infer_argv(tables, out, "aligned", model | {"base_url": server.url})) == 0
        assert len(server.bodies) == 13


def test_infer_cli_fails_when_the_server_rejects_every_call(tables, tmp_path, capsys):
    """A set-up fault (vLLM without audio: 400 to all) must fail the job, not score 0."""
    from tests.unit.test_backend_openai import ChatServer

    with ChatServer(script=[(400, {"error": "no audio support"}, {})] * 16) as server:
        model = {"backend": "openai", "model_id": "m", "base_url": server.url, "concurrency": 1}
        out = tmp_path / "o.parquet"
        assert main(_infer_argv(tables, out, "aligned", model)) == 1
    assert (
        "the model or its server rejected or failed all 16 model calls" in capsys.readouterr().err
    )
    assert not out.exists()
    with ChatServer() as server:  # fixed: every call is asked again
        model = model | {"base_url": server.url}
        assert main(_infer_argv(tables, out, "aligned", model)) == 0
        assert len(server.bodies) == 16


def test_train_reference_cli_needs_tokens_for_every_training_utterance(tables, tmp_path, capsys):
    tokens = io.read_table(tables / "tokens.parquet", "tokens")
    io.write_table(tokens.iloc[2:], tmp_path / "tokens.parquet", "tokens")
    argv = [
        "train-reference",
        "--manifest",
        str(tables / "manifest.parquet"),
        "--tokens",
        str(tmp_path / "tokens.parquet"),
    ]
    argv += [
        "--labels",
        json.dumps(LABELS),
        "--C",
        "1",
        "--seed",
        "0",
        "--out",
        str(tmp_path / "m.pkl"),
    ]
    argv += ["--n-bins", "5", "--token-template", "{concept}={value}", "--token-separator", "; "]
    assert main(argv) == 1
    assert "training utterance(s) have no tokens" in capsys.readouterr().err


# -- the transformers backend behind the runner; SIGKILL and resume --------------------------------------


@pytest.fixture(scope="module")
def tiny_qwen2_audio(tmp_path_factory) -> str:
    pytest.importorskip("transformers")
    sys.path.insert(0, str(REPO / "tests"))
    import tiny_models

    # a 2 s feature window keeps each request cheap on CPU
    return tiny_models.build_tiny_qwen2_audio(
        tmp_path_factory.mktemp("tiny") / "qwen2_audio", chunk_length=2
    )


def _hf_model(path: str) -> dict:
    return {
        "backend": "transformers",
        "model_id": path,
        "architecture": "qwen2_audio",
        "dtype": "float32",
        "batch_size": 1,
        "max_new_tokens": 2,
    }


def test_chat_text_carries_the_token_block_once(tables, tiny_qwen2_audio):
    from cueprobe.backends.factory import make_backend

    backend = make_backend(_hf_model(tiny_qwen2_audio), device="cpu")
    manifest = io.read_table(tables / "manifest.parquet", "manifest")
    for condition, want in (("aligned", 1), ("audio_only", 0)):
        table = io.read_table(tables / f"{condition}.parquet", "conditions")
        frame = build_requests(
            manifest, table, templates=TEMPLATES, labels=list(LABELS), splits=["test"]
        )
        for r in list(unique_requests({condition: frame}, _audio_sha(manifest))[0].values())[:4]:
            text = backend.processor.apply_chat_template(
                backend.conversation(r.prompt, r.audio_path),
                tokenize=False,
                add_generation_prompt=True,
            )
            assert token_block_count(text) == want
            assert text.count(TEMPLATES.audio_only.format(labels=LABEL_LIST)) == 1


def test_make_backend_loads_an_adapter_from_a_subfolder(tiny_qwen2_audio, tmp_path):
    from cueprobe.backends.factory import make_backend
    from tests.tiny_models import build_tiny_peft_adapter

    build_tiny_peft_adapter(tiny_qwen2_audio, tmp_path / "repo" / "think")
    cfg = _hf_model(tiny_qwen2_audio) | {"adapter": str(tmp_path / "repo")}
    backend = make_backend(cfg | {"adapter_subfolder": "think"}, device="cpu")
    assert re.search(
        rf"adapter={tmp_path / 'repo'}/think@main@local-[0-9a-f]{{12}}$", backend.info.decoding
    )
    with pytest.raises(ValueError, match="Can't find 'adapter_config.json'"):
        make_backend(cfg, device="cpu")  # peft's own error: no adapter at the repo's root


def test_infer_cli_transformers_conditions_share_prefixes_with_the_same_answers(
    tables, tiny_qwen2_audio, tmp_path
):
    """Two token conditions in one job: at batch 4 the requests of an utterance share their
    prompt prefix (prefilled once), at batch 1 nothing is shared; the predictions agree."""
    aligned = io.read_table(tables / "aligned.parquet", "conditions")
    shuffled = aligned["token_string"].sample(frac=1.0, random_state=0).to_numpy()
    io.write_table(aligned.assign(token_string=shuffled), tmp_path / "s.parquet", "conditions")
    conditions = [str(tables / "aligned.parquet"), str(tmp_path / "s.parquet")]
    out = {}
    for batch_size in (1, 4):
        outs = [tmp_path / f"b{batch_size}_{c}.parquet" for c in ("aligned", "shuffle")]
        argv = _infer_argv(tables, outs[0], "aligned", _hf_model(tiny_qwen2_audio))
        cut = argv.index("--condition")
        argv[cut + 1 : cut + 2] = conditions
        cut = argv.index("--out")
        argv[cut:] = ["--out", *map(str, outs), "--check-out"]
        argv += [str(o.with_suffix(".check.json")) for o in outs]
        argv += ["--batch-size", str(batch_size)]
        assert main(argv) == 0
        out[batch_size] = [io.read_table(o, "predictions") for o in outs]
    for one, four in zip(out[1], out[4], strict=True):
        assert len(one) == 16
        pd.testing.assert_frame_equal(one, four)


def test_an_infer_job_resolves_its_device_once(tables, tiny_qwen2_audio, tmp_path, monkeypatch):
    """The set-up (journal check) and the backend each picked the device: two GPU claims'
    worth of work and two "no CUDA device" notes a job. The backend now gets the device
    the set-up resolved."""
    from cueprobe.backends import hf

    calls = []
    real = hf.default_device
    monkeypatch.setattr(hf, "default_device", lambda: calls.append(1) or real())
    argv = _infer_argv(tables, tmp_path / "o.parquet", "audio_only", _hf_model(tiny_qwen2_audio))
    assert main(argv) == 0
    assert calls == [1]
    assert main([*argv, "--device", "cpu"]) == 0  # a device given: none is picked
    assert calls == [1]


def test_a_job_the_journal_answers_whole_does_not_load_the_model(
    tables, tiny_qwen2_audio, tmp_path, monkeypatch, caplog
):
    """A forced re-run (a new answer_pattern, a re-parse) loaded a 7B model only to find
    every answer in the journal. The journal records the model's set-up beside its header:
    a job whose every request it answered under this set-up loads nothing; a changed
    set-up, an error answer or a journal from before the set-up was recorded loads."""
    from cueprobe.backends.hf import TransformersBackend

    out = tmp_path / "a.parquet"
    model = _hf_model(tiny_qwen2_audio)
    assert main(_infer_argv(tables, out, "aligned", model)) == 0
    expected = io.read_table(out, "predictions")
    journal = _journal(out)
    header, *rows = [json.loads(line) for line in journal.read_text().splitlines()]
    assert header["setup"]["model_files"] and header["setup"]["dtype"] == "float32"

    loads = []
    real_load = TransformersBackend._load_model

    def counted(self, *args, **kwargs):
        loads.append(1)
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(TransformersBackend, "_load_model", counted)
    with caplog.at_level("INFO"):
        assert main(_infer_argv(tables, out, "aligned", model)) == 0
    assert loads == [] and "the model is not loaded" in caplog.text
    pd.testing.assert_frame_equal(io.read_table(out, "predictions"), expected)
    assert journal.read_text().count("setup") == 1  # nothing new written

    # a set-up the journal has no section for: another token cap loads (and asks)
    assert main(_infer_argv(tables, out, "aligned", model | {"max_new_tokens": 3})) == 0
    assert loads == [1]
    # the first set-up again: its section still answers everything
    assert main(_infer_argv(tables, out, "aligned", model)) == 0
    assert loads == [1]
    pd.testing.assert_frame_equal(io.read_table(out, "predictions"), expected)

    # an error answer (None) is asked again: the model loads
    broken = [header, {**rows[0], "raw_output": None}, *rows[1:]]
    journal.write_text("".join(json.dumps(r) + "\n" for r in broken))
    assert main(_infer_argv(tables, out, "aligned", model)) == 0
    assert loads == [1, 1]
    pd.testing.assert_frame_equal(io.read_table(out, "predictions"), expected)

    # an error answer of this job's own, answered in another shard layout's journal: the
    # own journal wins (as the loaded run reads it), so the model loads and asks again
    # (the pipeline's layout: journal/tokens.jsonl beside journal/tokens.shard0.jsonl)
    own = tmp_path / "journal" / "tokens.jsonl"
    own.parent.mkdir()
    own.write_text("".join(json.dumps(r) + "\n" for r in broken))
    sibling = own.with_name("tokens.shard0.jsonl")
    sibling.write_text("".join(json.dumps(r) + "\n" for r in [header, *rows]))
    argv = [*_infer_argv(tables, out, "aligned", model), "--journal", str(own)]
    assert main(argv) == 0  # was: AssertionError, every request was answered
    assert loads == [1, 1, 1]
    pd.testing.assert_frame_equal(io.read_table(out, "predictions"), expected)
    del loads[2:]

    # a journal from before the set-up was recorded: loads once, asks nothing, and
    # records the set-up in a new section of the same header; then no load
    old = [{"header": header["header"]}, *rows]
    journal.write_text("".join(json.dumps(r) + "\n" for r in old))
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(_infer_argv(tables, out, "aligned", model)) == 0
    assert loads == [1, 1, 1] and "16 already answered, 0 to go" in caplog.text
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert lines[: len(old)] == old and lines[len(old)] == header and len(lines) == len(old) + 1
    assert main(_infer_argv(tables, out, "aligned", model)) == 0
    assert loads == [1, 1, 1]
    pd.testing.assert_frame_equal(io.read_table(out, "predictions"), expected)


def test_the_setup_without_loading_is_the_loaded_backends(tiny_qwen2_audio, tmp_path):
    """load_setup (no model) and the loaded backend's setup agree, adapter included: the
    journal's set-up is what decides that a job need not load its model."""
    from cueprobe.backends.factory import load_setup
    from cueprobe.backends.factory import make_backend
    from tests.tiny_models import build_tiny_peft_adapter

    build_tiny_peft_adapter(tiny_qwen2_audio, tmp_path / "adapter")
    for cfg in (
        _hf_model(tiny_qwen2_audio),
        _hf_model(tiny_qwen2_audio) | {"dtype": "auto", "max_new_tokens": 5},
        _hf_model(tiny_qwen2_audio) | {"adapter": str(tmp_path / "adapter")},
    ):
        setup = load_setup(cfg, device="cpu")
        assert setup == make_backend(cfg, device="cpu").setup
        assert setup["device"] == "cpu" and setup["dtype"] == "float32"
    assert setup["adapter_files"] and "peft" in setup
    assert load_setup({"backend": "openai", "model_id": "m"}) is None


def _run_infer(argv: list[str]) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "cueprobe", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_sigkill_then_resume_equals_uninterrupted_run(wavs, trained, tmp_path):
    d = tmp_path / "corpus"
    manifest = _manifest(wavs, 800)  # 200 test utterances, one request per batch
    tokens = _tokens(manifest)
    io.write_table(manifest, d / "manifest.parquet", "manifest")
    io.write_table(_condition(tokens, audio_only=False), d / "aligned.parquet", "conditions")
    model = {"backend": "reference", "batch_size": 1}
    extra = ("--model-files", str(trained["tokens"]))

    full = tmp_path / "full.parquet"  # the uninterrupted run (in-process: same code path)
    assert main(_infer_argv(d, full, "aligned", model, *extra)) == 0

    out = tmp_path / "killed.parquet"
    part = _journal(out)
    proc = _run_infer(_infer_argv(d, out, "aligned", model, *extra))
    deadline = time.monotonic() + 300
    while not (part.exists() and part.read_text().count("\n") >= 4):  # header + 3 answers
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    n_before = part.read_text().count("\n") - 1
    assert not out.exists()
    assert 3 <= n_before < 200  # killed mid-inference

    proc = _run_infer(_infer_argv(d, out, "aligned", model, *extra))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert f"{n_before} already answered, {200 - n_before} to go" in err.decode()
    pd.testing.assert_frame_equal(
        io.read_table(out, "predictions"), io.read_table(full, "predictions")
    )
    assert part.read_text().count("\n") == 1 + 200  # header + every answer, each once


# -- the backend factory ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"backend": "vllm"}, "unknown backend 'vllm'"),
        ({"backend": "transformers", "model_id": "x"}, r"needs \['architecture'\]"),
        ({"backend": "openai", "model_id": "m"}, r"needs \['base_url'\]"),
        ({"backend": "reference"}, "needs its trained classifier file"),
    ],
)
def test_make_backend_errors(cfg, message):
    from cueprobe.backends.factory import make_backend

    with pytest.raises(ValueError, match=message):
        make_backend(cfg)


def test_make_backend_builds_each_kind(trained):
    from cueprobe.backends.factory import make_backend
    from cueprobe.backends.openai_compat import OpenAIBackend

    reference = make_backend(
        {"backend": "reference", "batch_size": 3}, reference_files=[trained["audio"]]
    )
    assert isinstance(reference, ReferenceBackend) and reference.batch_size == 3
    client = make_backend(
        {
            "backend": "openai",
            "model_id": "m",
            "base_url": "http://h:1/v1",
            "concurrency": 16,
            "seed": 5,
        },
        system_prompt="S",
        api_key="k",
    )
    assert isinstance(client, OpenAIBackend)
    assert client.batch_size == 16 and client.system_prompt == "S" and client.seed == 5


def test_inference_modules_import_no_heavy_library():
    """Every `python -m cueprobe` call imports the stage CLIs: they must stay light."""
    code = (
        "import sys, cueprobe.cli.inference, cueprobe.inference, cueprobe.backends.factory;"
        "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_reference_inference_and_statistics_skip_sklearn_and_scipy_stats(trained):
    """Loading a trained reference model and the statistics need neither (0.8 s each)."""
    code = (
        "import sys; from cueprobe.backends.reference import ReferenceBackend;"
        f"ReferenceBackend.from_files([{str(trained['audio'])!r}, {str(trained['tokens'])!r}]);"
        "import cueprobe.stats, cueprobe.cli.evaluation;"
        "print(sorted(m for m in ('sklearn', 'scipy.stats') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_training_the_reference_model_imports_neither_sklearn_nor_scipy_stats(tables, tmp_path):
    """train-reference runs on every change of the token bins: 2 s of imports for a
    0.25 s fit was most of the job (measured)."""
    code = (
        "import sys; from cueprobe.cli import main;"
        "argv = sys.argv[1:]; rc = main(argv); assert rc == 0, rc;"
        "print(sorted(m for m in ('sklearn', 'scipy.stats') if m in sys.modules))"
    )
    argv = ["train-reference", "--manifest", str(tables / "manifest.parquet")]
    argv += ["--labels", json.dumps(LABELS), "--C", "1.0", "--seed", "3"]
    argv += ["--out", str(tmp_path / "tokens.pkl"), "--tokens", str(tables / "tokens.parquet")]
    argv += ["--n-bins", "5", "--token-template", "{concept}={value}", "--token-separator", "; "]
    env = os.environ | {"PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_answer_config_keeps_only_answer_changing_keys():
    from cueprobe.backends.factory import answer_config

    cfg = {
        "backend": "transformers",
        "model_id": "m",
        "revision": "abc",
        "concurrency": 3,
        "batch_size": 4,
        "resources": {"gpu": 1},
        "adapter_subfolder": "think",
    }
    assert answer_config(cfg) == {
        "backend": "transformers",
        "model_id": "m",
        "revision": "abc",
        "adapter_subfolder": "think",
    }
    with pytest.raises(ValueError, match="unknown backend 'vllm'"):
        answer_config({"backend": "vllm"})


def test_a_checkpoint_that_is_not_there_is_one_line_not_a_traceback(tables, tmp_path, capsys):
    """from_pretrained takes a missing folder for a Hub repo id and raises OSError ("Repo
    id must be in the form ..."): the job log showed a 30-line traceback."""
    model = {"backend": "transformers", "model_id": str(tmp_path / "absent"),
             "architecture": "qwen2_audio"}  # fmt: skip
    out = tmp_path / "aligned.parquet"
    assert main(_infer_argv(tables, out, "aligned", model, "--device", "cpu")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cueprobe infer: error: ")
    assert "Traceback" not in err and not out.exists()


def test_a_token_condition_without_any_token_block_and_a_corpus_not_found_fail(
    tables, trained, tmp_path, capsys
):
    """An aligned table of null token strings was asked, and scored, as audio-only; a
    manifest whose every file is gone gave a table of NaN embeddings (exit code 0) and a
    failure one stage later."""
    import shutil

    d = tmp_path / "t"
    d.mkdir()
    shutil.copy(tables / "manifest.parquet", d / "manifest.parquet")
    aligned = io.read_table(tables / "aligned.parquet", "conditions")
    io.write_table(aligned.assign(token_string=None), d / "aligned.parquet", "conditions")
    model = {"backend": "reference", "batch_size": 4}
    files = ["--model-files", str(trained["audio"]), str(trained["tokens"])]
    assert main(_infer_argv(d, tmp_path / "p.parquet", "aligned", model, *files)) == 1
    assert "16 of 16 evaluated utterance(s) have no token_string" in capsys.readouterr().err
    manifest = io.read_table(tables / "manifest.parquet", "manifest")
    moved = manifest.assign(path=manifest["path"].str.replace("/", "/moved/", n=1))
    io.write_table(moved, d / "moved.parquet", "manifest")
    out = tmp_path / "e.parquet"
    assert main(["embed-reference", "--manifest", str(d / "moved.parquet"), "--out", str(out)]) == 1
    assert "no audio file of" in capsys.readouterr().err and not out.exists()


# --- what each request carries, and the journal's reading (a mutation review) -----------

_T = PromptTemplates(
    audio_only="Emotion? {labels}.", with_tokens="Emotion? {labels}.\nCues: {tokens}"
)
_MAN = pd.DataFrame(
    {
        "utt_id": ["c", "a", "b"],
        "path": ["/x/c.wav", "/x/a.wav", "/x/b.wav"],
        "split": ["test", "dev", "test"],
        "label": ["angry", "sad", "happy"],
    }
)
_COND = pd.DataFrame(
    {"utt_id": ["a", "b", "c"], "token_string": ["PITCH=LOW", "PITCH=HIGH", "PITCH=MID"]}
)


def test_each_request_carries_its_own_rows_prompt_and_audio():
    """Every request given the first row's prompt (the model hearing another utterance's
    token block) passed every test: they compared two runs of the same code."""
    frames = {
        "aligned": build_requests(_MAN, _COND, templates=_T, labels=["sad"], splits=["all"]),
        "audio_only": build_requests(
            _MAN, _COND.assign(token_string=None), templates=_T, labels=["sad"],
            splits=["all"], token_blocks=False,
        ),
    }  # fmt: skip
    requests, keys = unique_requests(frames, {p: p for p in _MAN["path"]})
    for name, frame in frames.items():
        rows = zip(keys[name], frame["utt_id"], frame["prompt"], frame["audio_path"], strict=True)
        for key, utt, prompt, path in rows:
            assert (requests[key].utt_id, requests[key].prompt, requests[key].audio_path) == (
                utt, prompt, path,
            )  # fmt: skip
    by_utt = dict(zip(frames["aligned"]["utt_id"], keys["aligned"], strict=True))
    assert requests[by_utt["c"]].prompt == "Emotion? sad.\nCues: PITCH=MID"
    assert requests[by_utt["c"]].audio_path == "/x/c.wav"


def test_two_evaluated_splits_keep_each_rows_split_and_label():
    frame = build_requests(_MAN, _COND, templates=_T, labels=["sad"], splits=["dev", "test"])
    assert frame["utt_id"].tolist() == ["a", "b", "c"]
    pred = predictions_table(
        frame, {"a": "sad", "b": "x", "c": None}, info=BackendInfo("m", "r", "d"),
        labels={"sad": [], "happy": [], "angry": []},
    )  # fmt: skip
    assert pred["split"].tolist() == ["dev", "test", "test"]
    assert pred["label"].tolist() == ["sad", "happy", "angry"]


def test_answers_of_a_failed_batch_keep_their_positions():
    """A backend answering concurrently fails with the answers it got by position
    (here 0 and 2): renumbered, they were journaled under the wrong keys."""

    class Down:
        def generate(self, batch):
            err = ConnectionError("down")
            err.answered = {0: "sad", 2: "happy"}
            raise err

    got = []
    with pytest.raises(ConnectionError):
        run_requests(
            Down(), {"k0": 0, "k1": 1, "k2": 2}, batch_size=3, done=set(),
            on_batch=lambda k, b, a: got.extend(zip(k, a, strict=True)),
        )  # fmt: skip
    assert got == [("k0", "sad"), ("k2", "happy")]


def test_audio_dependence_shares_and_bounds():
    """Only 50/50 splits were tested: the majority taken from the least frequent label,
    and the min_shared and one-row bounds, passed."""
    df = pd.DataFrame({"pred": ["sad"] * 3 + ["happy"], "prompt_sha": ["a"] * 4})
    check = audio_dependence(df, min_shared=5)
    assert check.majority_share == 0.75 and check.prompt_determined_share == 0.75
    assert not audio_dependence(df.head(1)).invariant  # one utterance: nothing to compare
    ten = pd.DataFrame({"pred": ["sad", "happy"] * 5, "prompt_sha": ["a", "b"] * 5})
    assert audio_dependence(ten, min_shared=10).invariant  # exactly min_shared


def test_the_last_journal_answer_of_a_key_wins_and_a_torn_line_is_cut(tmp_path):
    """A key answered None, then asked again and answered, read as None (asked again on
    every run); a torn last line left in place took the next append onto it."""
    from cueprobe.cli.inference import _read_journal

    header = {"model_id": "m", "revision": "r", "decoding": "d"}
    row = {"utt_id": "u", "prompt_sha": "p", "audio_sha": "a"}
    journal = tmp_path / "j.answers.jsonl"
    lines = [{"header": header}, row | {"raw_output": None}, row | {"raw_output": "sad"}]
    text = "".join(json.dumps(x) + "\n" for x in lines)
    journal.write_text(text + '{"utt_id": "v", "pro')
    answers, in_section = _read_journal(journal, header)
    assert answers == {"u\tp\ta": "sad"} and in_section
    assert journal.read_text() == text  # the next append starts on a line of its own


def test_every_sibling_journal_is_read(tmp_path):
    """Resharding reused only the last sibling journal's answers (GPU hours asked again)."""
    from cueprobe.cli.inference import _read_journal

    header = {"model_id": "m", "revision": "r", "decoding": "d"}
    d = tmp_path / "journal"
    d.mkdir()
    for name, utt in (("tokens.jsonl", "u0"), ("tokens.shard0.jsonl", "u1")):
        rows = [
            {"header": header},
            {"utt_id": utt, "prompt_sha": "p", "audio_sha": "a", "raw_output": "sad"},
        ]
        (d / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers, _ = _read_journal(d / "tokens.shard1.jsonl", header)
    assert set(answers) == {"u0\tp\ta", "u1\tp\ta"}


def test_the_reference_model_refuses_the_all_split(tables, trained, tmp_path, capsys):
    """`all` holds its training split: scored on it, the trained model looks better."""
    argv = _infer_argv(
        tables, tmp_path / "p.parquet", "aligned", {"backend": "reference"},
        "--model-files", str(trained["tokens"]),
    )  # fmt: skip
    argv[argv.index("--splits") + 1] = json.dumps(["all"])
    assert main(argv) == 1
    assert "must not be scored on it" in capsys.readouterr().err
