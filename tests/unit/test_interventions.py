"""Interventions, prompts and answer parsing: exact values and every error message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cueprobe.interventions import ConditionSpec
from cueprobe.interventions import build_condition
from cueprobe.interventions import conflict
from cueprobe.interventions import corrupt
from cueprobe.interventions import parse_condition
from cueprobe.interventions import shuffle
from cueprobe.parsing import parse_answer
from cueprobe.parsing import parse_answers
from cueprobe.prompts import PromptTemplates
from cueprobe.prompts import build_prompt
from cueprobe.prompts import prompt_sha
from tests.property.test_interventions_properties import VQ_MAP

ROW = {
    "utt_id": "u1",
    "ENERGY": "VERY_HIGH",
    "PITCH": "LOW",
    "DYNAMICS": "MID",
    "BRIGHTNESS": "VERY_DARK",
    "FORMANTS": "HIGH",
    "VOICE_QUALITY": "BREATHY",
}
VQ = {"BREATHY": "PRESSED", "PRESSED": "BREATHY", "MODAL": "ROUGH", "ROUGH": "MODAL"}


def test_conflict_exact_values():
    out = conflict(pd.DataFrame([ROW]), n_bins=5, voice_quality_map=VQ)
    assert out.iloc[0].to_dict() == {
        "utt_id": "u1",
        "ENERGY": "VERY_LOW",
        "PITCH": "HIGH",
        "DYNAMICS": "MID",
        "BRIGHTNESS": "VERY_BRIGHT",
        "FORMANTS": "LOW",
        "VOICE_QUALITY": "PRESSED",
    }


@pytest.mark.parametrize("dtype", ["str", "object", "string[python]", "category"])
def test_corrupt_keeps_the_column_dtype_and_leaves_its_input_alone(dtype):
    """to_numpy can hand back a frame's own buffer: read-only (object under pandas'
    copy-on-write: corrupt failed) or the caller's (string[python]: corrupt rewrote the
    caller's token table)."""
    tokens = pd.DataFrame([{**ROW, "utt_id": f"u{i}"} for i in range(40)]).astype(
        {c: dtype for c in ROW if c != "utt_id"}
    )
    before = tokens.copy(deep=True)
    out = corrupt(tokens, n_bins=5, p=1.0, rng=np.random.default_rng(0))
    pd.testing.assert_frame_equal(tokens, before)
    assert (out["ENERGY"] != tokens["ENERGY"]).any()
    for c in ROW:  # a categorical column: a draw outside its categories was NaN ("=nan")
        want = object if dtype == "category" and c != "utt_id" else tokens[c].dtype
        assert out[c].dtype == want and out[c].notna().all(), c


def test_corrupt_and_conflict_use_only_the_voice_quality_values_the_rule_gives():
    """A custom rule order without CREAKY or ROUGH: corruption drew them anyway (a token
    no aligned block shows), and conflict's MODAL -> ROUGH made one."""
    tokens = pd.DataFrame(
        [{**ROW, "utt_id": f"u{i}", "VOICE_QUALITY": "MODAL"} for i in range(400)]
    )
    values = ["UNVOICED", "BREATHY", "PRESSED", "MODAL"]
    out = corrupt(tokens, n_bins=5, p=1.0, rng=np.random.default_rng(0), voice_quality=values)
    assert set(out["VOICE_QUALITY"]) == set(values)
    every = corrupt(tokens, n_bins=5, p=1.0, rng=np.random.default_rng(0))
    assert set(every["VOICE_QUALITY"]) == {
        "UNVOICED",
        "ROUGH",
        "BREATHY",
        "PRESSED",
        "CREAKY",
        "MODAL",
    }
    with pytest.raises(ValueError, match=r"gives \['ROUGH'\], which the voice quality rule never"):
        conflict(tokens, n_bins=5, voice_quality_map=VQ, voice_quality=values)
    vq = {**VQ, "MODAL": "BREATHY"}
    out = conflict(tokens, n_bins=5, voice_quality_map=vq, voice_quality=values)
    assert set(out["VOICE_QUALITY"]) == {"BREATHY"}


#: DESIGN.md's default opposite map, written out there (the schema's default must agree)
DESIGN_VQ = VQ_MAP
LEVELS = {
    "ENERGY": ["VERY_LOW", "LOW", "MID", "HIGH", "VERY_HIGH"],
    "PITCH": ["VERY_LOW", "LOW", "MID", "HIGH", "VERY_HIGH"],
    "DYNAMICS": ["VERY_STATIC", "STATIC", "MID", "DYNAMIC", "VERY_DYNAMIC"],
    "BRIGHTNESS": ["VERY_DARK", "DARK", "MID", "BRIGHT", "VERY_BRIGHT"],
    "FORMANTS": ["VERY_LOW", "LOW", "MID", "HIGH", "VERY_HIGH"],
}


def test_conflict_maps_every_voice_quality_and_every_level_as_designed():
    """Only BREATHY rows were checked: a map applied wrongly to CREAKY (-> CREAKY) or to
    the middle levels passed every test."""
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[2]
    schema = yaml.safe_load((repo / "workflow/schemas/config.schema.yaml").read_text())
    default = schema["properties"]["interventions"]["properties"]["conflict_voice_quality"]
    assert default["default"] == DESIGN_VQ
    rows = [
        {"utt_id": f"u{i}", **{c: v[i] for c, v in LEVELS.items()}, "VOICE_QUALITY": vq}
        for i, vq in enumerate(list(DESIGN_VQ)[:5])
    ]
    rows.append({**rows[2], "utt_id": "u5", "VOICE_QUALITY": "UNVOICED"})
    out = conflict(pd.DataFrame(rows), n_bins=5, voice_quality_map=DESIGN_VQ)
    for c, levels in LEVELS.items():
        assert out[c].tolist() == [*levels[::-1], "MID"], c
    assert out["VOICE_QUALITY"].tolist() == list(DESIGN_VQ.values())


def test_corrupt_replaces_each_position_independently_and_uniformly():
    """Only p = 0, p = 1, nesting and determinism were tested: a replacement drawn from
    the hit's own uniform (biased to the low levels), one hit or one draw for a whole
    row, or the last value drawn twice as often, all passed."""
    n = 20_000
    mid = {c: "MID" for c in LEVELS} | {"VOICE_QUALITY": "MODAL"}
    tokens = pd.DataFrame([{"utt_id": f"u{i}", **mid} for i in range(n)])
    vocab = {**LEVELS, "VOICE_QUALITY": list(DESIGN_VQ)}  # the rule's six values
    for p in (0.5, 1.0):
        out = corrupt(tokens, n_bins=5, p=p, rng=np.random.default_rng(7))
        changed = pd.DataFrame({c: out[c] != mid[c] for c in vocab})
        for c, values in vocab.items():
            k = len(values)
            # a hit keeps its value with 1/k: the share changed is p (k - 1) / k
            assert abs(changed[c].mean() - p * (k - 1) / k) < 0.015, (p, c)
            hit_values = out[c][changed[c]].value_counts(normalize=True)
            assert set(hit_values.index) == set(values) - {mid[c]}, (p, c)
            assert (hit_values - 1 / (k - 1)).abs().max() < 0.02, (p, c)
        if p < 1:  # which positions are hit: independent across a row's concepts
            corr = np.corrcoef(changed.to_numpy(dtype=float), rowvar=False)
            assert np.abs(corr[np.triu_indices(6, 1)]).max() < 0.03
        # and what they are replaced by: two levels hit in one row agree 1 time in 4
        both = changed["ENERGY"] & changed["PITCH"]
        agree = (out["ENERGY"][both] == out["PITCH"][both]).mean()
        assert abs(agree - 1 / 4) < 0.03, p


def test_token_string_and_audio_only():
    kw = dict(n_bins=5, groups=None, voice_quality_map=VQ, template="{concept}={value}")
    aligned = build_condition("aligned", pd.DataFrame([ROW]), separator="; ", rng=None, **kw)
    assert aligned["token_string"].iloc[0] == (
        "ENERGY=VERY_HIGH; PITCH=LOW; DYNAMICS=MID; BRIGHTNESS=VERY_DARK; FORMANTS=HIGH; "
        "VOICE_QUALITY=BREATHY"
    )
    none = build_condition("audio_only", pd.DataFrame([ROW]), separator="; ", rng=None, **kw)
    assert none["token_string"].isna().all() and none["ENERGY"].isna().all()


def test_condition_names_round_trip():
    spec = ConditionSpec((0, 1), (0.0, 0.25, 1.0), (0,))
    names = spec.names()
    assert names == [
        "audio_only",
        "aligned",
        "shuffle_s0",
        "shuffle_s1",
        "conflict",
        "corrupt_p0_s0",
        "corrupt_p25_s0",
        "corrupt_p100_s0",
    ]
    assert parse_condition("corrupt_p100_s0") == ("corrupt", 1.0, 0)


@pytest.mark.parametrize("name", ["shuffle", "corrupt_p101_s0", "noise", "corrupt_p5"])
def test_unknown_condition(name):
    with pytest.raises(ValueError, match=f"unknown condition '{name}'"):
        parse_condition(name)


def test_errors():
    tokens = pd.DataFrame([ROW])
    with pytest.raises(ValueError, match=r"`tokens` lacks column\(s\) \['FORMANTS'\]"):
        conflict(tokens.drop(columns="FORMANTS"), n_bins=5, voice_quality_map=VQ)
    with pytest.raises(ValueError, match="column ENERGY has 1 value\\(s\\) outside its 3-bin"):
        conflict(tokens, n_bins=3, voice_quality_map=VQ)
    with pytest.raises(ValueError, match=r"no opposite for \['CREAKY'\]"):
        conflict(tokens.assign(VOICE_QUALITY="CREAKY"), n_bins=5, voice_quality_map=VQ)
    with pytest.raises(ValueError, match=r"`p` must lie in \[0, 1\], got 1.5"):
        corrupt(tokens, n_bins=5, p=1.5, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="`groups` has 2 entries for 1 token rows"):
        shuffle(tokens, n_bins=5, groups=["a", "b"], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="condition 'shuffle_s0' is random: pass an `rng`"):
        build_condition(
            "shuffle_s0",
            tokens,
            n_bins=5,
            groups=None,
            voice_quality_map=VQ,
            template="{concept}={value}",
            separator="; ",
            rng=None,
        )


def test_prompts():
    t = PromptTemplates("Labels: {labels}.", "Labels: {labels}.\nCues: {tokens}", system="sys")
    a = build_prompt(t, labels=["angry", "sad"], token_string=None)
    b = build_prompt(t, labels=["angry", "sad"], token_string="ENERGY=LOW")
    assert a == "Labels: angry, sad."
    assert b == "Labels: angry, sad.\nCues: ENERGY=LOW"
    assert b.count("ENERGY=LOW") == 1
    assert prompt_sha(t, a) != prompt_sha(t, b)
    assert prompt_sha(t, a) == prompt_sha(t, a) and len(prompt_sha(t, a)) == 16
    other = PromptTemplates(t.audio_only, t.with_tokens, system="other")
    assert prompt_sha(other, a) != prompt_sha(t, a)
    with pytest.raises(ValueError, match=r"prompts.with_tokens must use exactly the fields"):
        PromptTemplates("{labels}", "{labels} only")
    with pytest.raises(ValueError, match=r"prompts.audio_only must use exactly the fields"):
        PromptTemplates("{labels} {tokens}", "{labels} {tokens}")
    # the token prompt is the audio-only prompt plus the block, before, inside or after it
    assert PromptTemplates("Pick: {labels}.", "Cues: {tokens}\nPick: {labels}.").with_tokens
    assert (
        PromptTemplates("Q? Pick: {labels}.", "Q? Cues: {tokens}. Pick: {labels}.").system is None
    )
    assert PromptTemplates("Pick: {labels}.\n", "Pick: {labels}.\nCues: {tokens}\n").with_tokens
    with pytest.raises(ValueError, match=r"with one token block inserted"):
        PromptTemplates("Classify. Options: {labels}.", "You are an expert. {labels}? {tokens}")
    with pytest.raises(ValueError, match=r"with one insertion holding"):  # reworded too
        PromptTemplates("Pick: {labels}.", "Be careful. Pick: {labels}.\nCues: {tokens}")


def test_prompt_sha_tells_apart_what_the_model_reads_differently():
    """Texts that differ only in trailing whitespace, or in where the system text ends
    and the prompt begins, are different inputs to a model: one sha for both passed, as
    did a built prompt stripped of its template's final newline (a mutation review)."""
    import hashlib

    t = PromptTemplates("Labels: {labels}.\n", system="Be brief.")
    assert build_prompt(t, labels=["sad"], token_string=None) == "Labels: sad.\n"
    want = hashlib.sha256(b"Be brief.\0Labels: sad.\n").hexdigest()[:16]  # system, NUL, prompt
    assert prompt_sha(t, "Labels: sad.\n") == want
    assert prompt_sha(t, "Labels: sad.") != want
    moved = PromptTemplates("Labels: {labels}.\n", system="Be brief.\n")
    assert prompt_sha(moved, "Labels: sad.\n") != want
    shifted = PromptTemplates("x {labels}", system="Be brief.L")
    assert prompt_sha(shifted, "abels: sad.\n") != want


def test_condition_grid_refuses_what_its_names_cannot_carry():
    """The p a corruption applies is read back from its name (whole percent): 0.004 ran
    as corrupt_p0, i.e. as aligned; a repeated p or seed failed with Snakemake's
    "Duplicate output file pattern"."""
    with pytest.raises(ValueError, match=r"corrupt_p: 0.004 is not a whole percent.*0.0 or 0.01"):
        ConditionSpec((0,), (0.004, 1.0), (0,))
    with pytest.raises(ValueError, match=r"corrupt_p: 0.125 is not a whole percent"):
        ConditionSpec((0,), (0.125,), (0,))
    with pytest.raises(ValueError, match=r"corrupt_p: \[0.5\] given more than once"):
        ConditionSpec((0,), (0.5, 0.25, 0.5), (0,))
    with pytest.raises(ValueError, match=r"shuffle_seeds: \[1\] given more than once"):
        ConditionSpec((0, 1, 1), (0.5,), (0,))
    assert ConditionSpec((0,), (0.0, 0.07, 0.29, 1.0), (0, 1)).names()[-1] == "corrupt_p100_s1"


def test_a_job_gets_only_its_groups_template_and_the_other_is_an_error_to_ask_for():
    audio = PromptTemplates(audio_only="Labels: {labels}.", system="sys")
    assert build_prompt(audio, labels=["sad"], token_string=None) == "Labels: sad."
    with pytest.raises(ValueError, match=r"prompts.with_tokens is not given"):
        build_prompt(audio, labels=["sad"], token_string="ENERGY=LOW")
    tokens = PromptTemplates(with_tokens="{labels} | {tokens}")
    assert build_prompt(tokens, labels=["sad"], token_string="ENERGY=LOW") == "sad | ENERGY=LOW"
    with pytest.raises(ValueError, match=r"prompts.audio_only is not given"):
        build_prompt(tokens, labels=["sad"], token_string=None)


LABELS = {"angry": ["anger", "mad"], "happy": ["happiness", "excited"], "neutral": [], "sad": []}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("angry", ("angry", "exact")),
        ("  Neutral. ", ("neutral", "exact")),
        ("Excited!", ("happy", "synonym")),
        ("The emotion is: sad", ("sad", "mention")),
        ("I'd say he is mad, really mad", ("angry", "mention")),  # one label, twice
        ("happy or sad? I'd say sad", ("", "unparsed")),  # two labels: never the first
        ("The speaker is not happy; they sound sad.", ("", "unparsed")),
        ("Not angry.", ("", "unparsed")),  # negated
        ("She isn't sad", ("", "unparsed")),
        ("unhappy", ("", "unparsed")),
        ("", ("", "unparsed")),
        (None, ("", "unparsed")),
        ("Frustrated", ("", "unparsed")),
        ("non-neutral", ("", "unparsed")),  # scored neutral: the opposite of its meaning
        ("Non-neutral, clearly upset", ("", "unparsed")),
        # negations the word list missed: these were wrong predictions, not unparsed
        ("Nothing suggests anger here; the voice is calm.", ("", "unparsed")),
        ("The speaker isnt angry.", ("", "unparsed")),
        ("nothing sad here", ("", "unparsed")),
        ("un-happy", ("", "unparsed")),
        ("Neither happy nor sad.", ("", "unparsed")),
        # a negation that governs no label: these were unparsed (neutral recall fell)
        ("The speaker sounds neutral, with no strong emotion.", ("neutral", "mention")),
        ("Neutral. The tone is calm and not particularly emotional.", ("neutral", "mention")),
        ("The speaker is angry, no question.", ("angry", "mention")),
        # the first sentence is the answer; what follows explains it
        ("Neutral. The voice is calm, not angry or sad.", ("neutral", "mention")),
        ("Angry? No, sad.", ("", "unparsed")),  # a question first: not an answer
        ("Sad, maybe angry.", ("", "unparsed")),
        # a list keyed by labels: its first key was the answer (wrong labels); now its
        # top score or its one yes, else unparsed
        ("sad: 0.2, angry: 0.7", ("angry", "mention")),
        ("Angry: no\nHappy: no\nNeutral: no\nSad: yes", ("sad", "mention")),
        ('{"angry": 0.1, "sad": 0.9}', ("sad", "mention")),
        ("Sad: yes\nAngry: no", ("sad", "mention")),
        ("sad: 0.5, angry: .5", ("", "unparsed")),
        ("Angry: yes\nNeutral: no\nSad: yes", ("", "unparsed")),
        ("Sad: the tone suggests this. Not angry: it lacks intensity.", ("sad", "mention")),
        ("\n\nSad. The voice is low, not angry.", ("sad", "mention")),  # cut after </think>
        ("Sad™", ("sad", "exact")),
        # a first sentence taken back is no answer (it was the answer: a wrong label)
        ("Neutral. Actually, on second listen, sad.", ("", "unparsed")),
        ("Neutral. Actually, the voice is calm, not sad.", ("neutral", "mention")),
        # phrases that negate the label after them (each was parsed as that label)
        ("Anything but angry.", ("", "unparsed")),
        ("The speaker is far from happy.", ("", "unparsed")),
        ("The speaker sounds frustrated rather than sad.", ("", "unparsed")),
        ("More annoyed than sad.", ("", "unparsed")),
        ("The speaker sounds sad instead of angry.", ("", "unparsed")),
        ("Emotion: Sad", ("sad", "mention")),  # one key that is no label
        ("Sad: the voice is low and slow.", ("sad", "mention")),
        # Unicode: full-width and mathematical letters, a soft hyphen, other apostrophes
        ("ＳＡＤ", ("sad", "exact")),
        ("𝐍𝐞𝐮𝐭𝐫𝐚𝐥", ("neutral", "exact")),
        ("hap\u00adpiness", ("happy", "synonym")),
        ("The speaker isn‘t happy.", ("", "unparsed")),
        ("The speaker isnʼt happy.", ("", "unparsed")),
        ("The speaker doesn`t sound sad.", ("", "unparsed")),
        # one key denied: it was that label ("Angry" read as a first sentence)
        ("Angry: no", ("", "unparsed")),
        ("Sad: no.", ("", "unparsed")),
        ("Sad: false", ("", "unparsed")),
        ("Sad: yes", ("sad", "mention")),
        ("sad: yes, angry: 0.3", ("", "unparsed")),  # scores and yes/no mixed
        ("sad: 0.9, angry: 0.1, sad: 0.0", ("sad", "mention")),  # a key's first value
        # clause and sentence bounds: a negation reaches no label past them
        ("The speaker sounds sad but not hysterical.", ("sad", "mention")),
        ("No doubt, the speaker is sad.", ("sad", "mention")),
        ("Not sure - but sad.", ("sad", "mention")),
        ("Sad! Not angry.", ("sad", "mention")),
        ("Sad\nThe voice is low, not angry.", ("sad", "mention")),
        ("Excited. Not sad.", ("happy", "mention")),  # a synonym as the first sentence
        ("The voice is calm, without anger.", ("", "unparsed")),
    ],
)
def test_parse_answer(text, expected):
    assert parse_answer(text, LABELS) == expected


#: every word and phrase that negates a label after it, written out here, not read from
#: the parser (a word dropped from its list turned "The voice is hardly angry." angry)
NEGATIONS = (
    "not no non un never neither nor without nothing none nobody hardly barely lack lacks "
    "lacking absence absent cannot isnt arent wasnt werent dont doesnt didnt cant wont "
    "wouldnt shouldnt couldnt aint hasnt havent hadnt".split()
    + ["anything but", "far from", "instead of", "isn't", "wasn’t"]
)


@pytest.mark.parametrize("negation", NEGATIONS)
def test_each_negation_governs_the_label_after_it(negation):
    assert parse_answer(f"The voice is {negation} angry.", LABELS) == ("", "unparsed")
    assert parse_answer(f"The voice is {negation} calm, and angry.", LABELS)[0] == "angry"


def test_other_is_fau_aibos_rest_as_a_whole_answer_only():
    from cueprobe.corpora.aibo import LABELS as AIBO

    assert parse_answer("Other.", AIBO) == ("rest", "synonym")
    assert parse_answer("Angry. Other emotions are unlikely.", AIBO) == ("angry", "mention")
    assert parse_answer("The child sounds positive, unlike the other one.", AIBO)[0] == "positive"
    # "other" under a negation is no negated mention of rest
    assert parse_answer("The child sounds angry, no other emotion.", AIBO) == ("angry", "mention")
    # nor is `rest` in its everyday senses the rest class ("I need some rest" was rest),
    # but it is an answer in a sentence as every other class is
    assert parse_answer("I need some rest.", AIBO) == ("", "unparsed")
    assert parse_answer("The rest is unclear, but the child sounds angry.", AIBO)[0] == "angry"
    for answer in ("Rest.", "Answer: Rest", "The emotion is rest.", "Rest: 0.9, Neutral: 0.1"):
        assert parse_answer(answer, AIBO)[0] == "rest", answer
    assert parse_answer("Emotion: Rest. Other emotions like angry are unlikely.", AIBO)[0] == ""


def test_a_degenerate_output_parses_in_linear_time():
    """The first-sentence regex (``^\\s*([^.]+?)\\s*[.]``) backtracked cubically: 1,600
    spaces took 4.7 s, ~8,000 characters ~10 min per distinct answer; these two took
    hours (no wall-clock assertion here: the old code does not finish)."""
    assert parse_answer("a" + " " * 50_000 + "b", LABELS) == ("", "unparsed")
    assert parse_answer(" " * 50_000 + "sad", LABELS) == ("sad", "exact")


def test_a_label_beats_another_labels_synonym_and_clashing_synonyms_are_refused():
    assert parse_answer("positive", {"happy": ["positive"], "positive": []}) == (
        "positive",
        "exact",
    )
    with pytest.raises(
        ValueError, match="answer words name two labels: 'mad' names angry and happy"
    ):
        parse_answers(["mad"], {"angry": ["mad"], "happy": ["glad", "mad"]})


def test_parse_answers_vectorised_and_errors():
    out = parse_answers(["sad", "mad", "?"], LABELS)
    assert out.to_dict("list") == {
        "pred": ["sad", "angry", ""],
        "parse_status": ["exact", "synonym", "unparsed"],
    }
    with pytest.raises(ValueError, match="`labels` is empty"):
        parse_answers(["sad"], {})


def test_condition_cli_pairs_each_name_with_an_output(tmp_path, capsys):
    from cueprobe.cli import main

    argv = ["condition", "--name", "audio_only", "aligned", "--manifest", str(tmp_path / "m")]
    assert main([*argv, "--out", str(tmp_path / "a.parquet")]) == 1
    assert "--out needs one path per --name (2), got 1." in capsys.readouterr().err


def _condition_inputs(tmp_path, n=60):
    """A manifest (40 train, 19 test, 1 dev utterance) and its tokens table, on disk."""
    from cueprobe import io
    from cueprobe.define import ORDINAL_CONCEPTS
    from cueprobe.interventions import CONCEPT_COLUMNS
    from cueprobe.interventions import vocabulary

    ids = [f"u{i:03d}" for i in range(n)]
    manifest = pd.DataFrame(
        {
            "utt_id": ids,
            "path": [f"/audio/{i}.wav" for i in ids],
            "speaker": [f"s{i % 5}" for i in range(n)],
            "gender": "unknown",
            "session": "1",
            "split": ["train"] * 40 + ["test"] * (n - 41) + ["dev"],  # dev: one utterance
            "label": "sad",
            "label_raw": "sad",
            "duration_s": 0.5,
        }
    )
    rng = np.random.default_rng(7)
    tokens = pd.DataFrame({"utt_id": ids[::-1]})  # another order than the manifest's
    for c in CONCEPT_COLUMNS:
        tokens[c] = rng.choice(vocabulary(c, 5), n)
    for c in ORDINAL_CONCEPTS:
        tokens[f"score_{c.value}"] = rng.standard_normal(n)
    tokens["token_string"] = "ignored: the CLI serialises with its own template"
    tokens["flag"] = ""
    io.write_table(manifest, tmp_path / "manifest.parquet", "manifest")
    io.write_table(tokens, tmp_path / "tokens.parquet", "tokens")
    return manifest, tokens


def _run_condition(tmp_path, names, out_dir, *extra):
    from cueprobe.cli import main

    out_dir.mkdir(exist_ok=True)
    argv = [
        "condition",
        "--name",
        *names,
        "--manifest",
        str(tmp_path / "manifest.parquet"),
        "--tokens",
        str(tmp_path / "tokens.parquet"),
        "--n-bins",
        "5",
        "--template",
        "{concept}={value}",
        "--separator",
        "; ",
        "--voice-quality-map",
        '{"BREATHY": "PRESSED", "PRESSED": "BREATHY", "MODAL": "ROUGH", "ROUGH": "MODAL", '
        '"CREAKY": "BREATHY", "UNVOICED": "UNVOICED"}',
        "--seed",
        "42",
        "--out",
        *[str(out_dir / f"{name}.parquet") for name in names],
        *extra,
    ]
    assert main(argv) == 0
    return {name: (out_dir / f"{name}.parquet").read_bytes() for name in names}


def test_condition_cli_seeds_nested_corruptions_and_order_free_streams(tmp_path):
    """The CLI's seeding, not only the library's: a stream that depended on p (e.g. seeded
    with round(100 p)) broke the nesting of corruptions in p with every other test passing."""
    from cueprobe import io
    from cueprobe.interventions import CONCEPT_COLUMNS

    _condition_inputs(tmp_path)
    names = ["corrupt_p25_s0", "corrupt_p50_s0", "corrupt_p100_s0", "shuffle_s0", "shuffle_s1"]
    first = _run_condition(tmp_path, names, tmp_path / "a")
    again = _run_condition(tmp_path, names, tmp_path / "b")
    backwards = _run_condition(tmp_path, names[::-1], tmp_path / "c")
    assert first == again  # two runs are byte-equal
    assert first == backwards  # a condition's stream does not depend on the order of --name
    read = {n: io.read_table(tmp_path / "a" / f"{n}.parquet", "conditions") for n in names}
    _run_condition(tmp_path, ["aligned"], tmp_path / "d")
    base = io.read_table(tmp_path / "d" / "aligned.parquet", "conditions")
    assert all((t["utt_id"] == base["utt_id"]).all() for t in read.values())
    cols = list(CONCEPT_COLUMNS)
    lo, mid, hi = (read[n][cols].to_numpy() for n in names[:3])
    orig = base[cols].to_numpy()
    # nested in p: every position changed at p=.25 is changed, to the same value, at .5, 1
    changed = lo != orig
    assert 0 < changed.sum() < (mid != orig).sum()
    assert (mid[changed] == lo[changed]).all() and (hi[changed] == lo[changed]).all()
    assert (hi[mid != orig] == mid[mid != orig]).all()
    # two shuffle seeds, two permutations
    assert not read["shuffle_s0"]["token_string"].equals(read["shuffle_s1"]["token_string"])


def test_condition_cli_corrupts_voice_quality_within_the_rule_order(tmp_path):
    """The rule's order reaches corruption through the CLI (the workflow passes
    tokens.voice_quality.order); without it every value may be drawn."""
    from cueprobe import io

    _condition_inputs(tmp_path)
    _run_condition(tmp_path, ["corrupt_p100_s0"], tmp_path / "all")
    _run_condition(
        tmp_path,
        ["corrupt_p100_s0"],
        tmp_path / "some",
        "--voice-quality-order",
        '["UNVOICED", "BREATHY"]',
    )
    read = {
        d: set(
            io.read_table(tmp_path / d / "corrupt_p100_s0.parquet", "conditions")["VOICE_QUALITY"]
        )
        for d in ("all", "some")
    }
    assert read["some"] == {"UNVOICED", "BREATHY", "MODAL"}
    assert {"ROUGH", "CREAKY", "PRESSED"} <= read["all"]


def test_condition_cli_logs_how_many_utterances_keep_their_aligned_block(tmp_path, caplog):
    """A shuffle can leave an utterance its own block (a fixed point; certain for the one
    dev utterance here): the CLI says how many, per token condition but aligned."""
    import logging

    from cueprobe import io

    manifest, _ = _condition_inputs(tmp_path)
    names = ["audio_only", "shuffle_s0", "conflict", "corrupt_p0_s0", "corrupt_p50_s0"]
    caplog.set_level(logging.INFO, logger="cueprobe")
    _run_condition(tmp_path, names, tmp_path / "a")
    _run_condition(tmp_path, ["aligned"], tmp_path / "b")
    base = io.read_table(tmp_path / "b" / "aligned.parquet", "conditions")["token_string"]
    dev = manifest.index[manifest["split"] == "dev"]
    messages = [r.getMessage() for r in caplog.records]
    for name in names[1:]:
        table = io.read_table(tmp_path / "a" / f"{name}.parquet", "conditions")
        kept = int((table["token_string"] == base).sum())
        assert f"{name}: {kept} of 60 utterances keep their aligned token block" in messages
        if name == "shuffle_s0":
            assert 1 <= kept < 60 and (table["token_string"][dev] == base[dev]).all()
    assert "corrupt_p0_s0: 60 of 60 utterances keep their aligned token block" in messages
    assert not any(m.startswith("audio_only:") for m in messages)


def test_corruption_names_round_p_as_planning_does():
    """int(100 * p) named 0.29 corrupt_p28 and read it back as 0.28."""
    names = ConditionSpec((0,), (0.29, 0.57, 0.58), (0,)).names()
    assert {"corrupt_p29_s0", "corrupt_p57_s0", "corrupt_p58_s0"} <= set(names)
    assert parse_condition("corrupt_p29_s0")[1] == pytest.approx(0.29)
