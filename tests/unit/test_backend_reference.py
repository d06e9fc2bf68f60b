"""The reference backend: log-mel statistics + tokens read back from the prompt -> logistic regression."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from cueprobe.backends.base import Backend
from cueprobe.backends.base import Request
from cueprobe.backends.reference import ReferenceBackend
from cueprobe.backends.reference import ReferenceClassifier
from cueprobe.backends.reference import embed_file
from cueprobe.backends.reference import encode_tokens
from cueprobe.backends.reference import fit_reference
from cueprobe.backends.reference import log_mel_statistics
from cueprobe.backends.reference import mel_filterbank
from cueprobe.backends.reference import parse_token_block
from cueprobe.backends.reference import standardisation
from cueprobe.corpora import build_manifest
from cueprobe.corpora import demo
from cueprobe.define import level_names
from cueprobe.interventions import CONCEPT_COLUMNS
from cueprobe.prompts import PromptTemplates
from cueprobe.prompts import build_prompt

TEMPLATE, SEPARATOR = "{concept}={value}", "; "
TEMPLATES = PromptTemplates(
    "Which emotion? One of: {labels}.", "Which emotion? One of: {labels}.\nCues: {tokens}"
)
AIBO_LABELS = ["angry", "emphatic", "neutral", "positive", "rest"]


def token_string(row) -> str:
    return SEPARATOR.join(TEMPLATE.format(concept=c, value=row[c]) for c in CONCEPT_COLUMNS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The Aibo-layout demo (Ohm train, Mont test), its log-mel embeddings and tokens.

    Tokens are quintiles of the generating parameters: informative, like real ones.
    """
    root = tmp_path_factory.mktemp("aibo")
    params = demo.make_demo_aibo(root, n_per_speaker=8, seed=2).set_index("utt_id")
    manifest, _ = build_manifest("aibo", root)
    manifest = manifest.sort_values("utt_id").reset_index(drop=True)
    p = params.loc[manifest["utt_id"]]
    tokens = pd.DataFrame({"utt_id": manifest["utt_id"]})
    for concept, col in [
        ("ENERGY", "level_db"),
        ("PITCH", "f0_hz"),
        ("DYNAMICS", "rate_hz"),
        ("BRIGHTNESS", "tilt"),
        ("FORMANTS", "formant_scale"),
    ]:
        tokens[concept] = pd.qcut(p[col].to_numpy(), 5, labels=level_names(concept, 5)).astype(str)
    tokens["VOICE_QUALITY"] = np.where(p["breathiness"].to_numpy() > 0.15, "BREATHY", "MODAL")
    embeddings = np.vstack([embed_file(x) for x in manifest["path"]])
    return manifest, embeddings, tokens


def _fit(corpus, *, with_tokens: bool, seed: int = 0) -> ReferenceClassifier:
    manifest, embeddings, tokens = corpus
    train = (manifest["split"] == "train").to_numpy()
    return fit_reference(
        embeddings[train],
        manifest.loc[train, "label"].tolist(),
        labels=AIBO_LABELS,
        tokens=tokens[train].reset_index(drop=True) if with_tokens else None,
        n_bins=5,
        token_template=TEMPLATE,
        token_separator=SEPARATOR,
        token_dropout=0.3,
        token_corrupt=0.3,
        C=1.0,
        rng=np.random.default_rng(seed),
    )


@pytest.fixture(scope="module")
def model_files(corpus, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    files = {}
    for kind in ("audio", "tokens"):
        files[kind] = d / f"reference_{kind}.pkl"
        _fit(corpus, with_tokens=kind == "tokens").save(files[kind])
    return files


def _requests(corpus, *, with_tokens: bool) -> list[Request]:
    manifest, _, tokens = corpus
    held_out = manifest["split"] != "train"
    out = []
    for (_, m), (_, t) in zip(
        manifest[held_out].iterrows(), tokens[held_out].iterrows(), strict=True
    ):
        prompt = build_prompt(
            TEMPLATES, labels=AIBO_LABELS, token_string=token_string(t) if with_tokens else None
        )
        out.append(Request(m["utt_id"], m["path"], prompt, m["utt_id"]))
    return out


# -- embedding ---------------------------------------------------------------------------------


def test_log_mel_statistics_shape_and_sensitivity():
    t = np.arange(16000) / 16000
    low = log_mel_statistics(0.3 * np.sin(2 * np.pi * 150 * t))
    high = log_mel_statistics(0.3 * np.sin(2 * np.pi * 2500 * t))
    assert low.shape == high.shape == (80,)
    assert np.all(np.isfinite(low))
    # the tone's energy sits in a low band for 150 Hz and a high band for 2.5 kHz
    assert np.argmax(low[:40]) < np.argmax(high[:40])
    assert log_mel_statistics(np.zeros(100), n_mels=64).shape == (128,)  # padded to one frame


def test_log_mel_statistics_rejects_multichannel():
    with pytest.raises(ValueError, match="must be 1-D"):
        log_mel_statistics(np.zeros((2, 1000)))


def test_mel_filterbank_covers_the_band():
    fb = mel_filterbank(40, n_fft=512, sampling_rate=16000)
    assert fb.shape == (40, 257)
    assert np.all(fb.max(axis=1) > 0.5)  # no empty filter
    centres = fb.argmax(axis=1)
    assert np.all(np.diff(centres) >= 0)


def test_read_audio_resamples_and_mixes_down(tmp_path):
    import soundfile

    from cueprobe.audio import load_audio

    stereo = np.stack([np.ones(8000) * 0.5, np.zeros(8000)], axis=1)
    soundfile.write(tmp_path / "s.wav", stereo, 8000, subtype="FLOAT")
    signal = load_audio(str(tmp_path / "s.wav"), 16000, dtype="float64")
    assert signal.ndim == 1 and len(signal) == 16000
    assert signal[4000:12000].mean() == pytest.approx(0.25, abs=1e-3)


# -- tokens in prompts -------------------------------------------------------------------------


def test_parse_token_block_reads_back_the_serialised_tokens():
    row = {
        "ENERGY": "HIGH",
        "PITCH": "VERY_LOW",
        "DYNAMICS": "MID",
        "BRIGHTNESS": "VERY_DARK",
        "FORMANTS": "LOW",
        "VOICE_QUALITY": "MODAL",
    }
    prompt = build_prompt(TEMPLATES, labels=AIBO_LABELS, token_string=token_string(row))
    assert parse_token_block(prompt, template=TEMPLATE) == row
    plain = build_prompt(TEMPLATES, labels=AIBO_LABELS, token_string=None)
    assert parse_token_block(plain, template=TEMPLATE) == {}


def test_parse_token_block_follows_a_custom_template():
    prompt = "Cues: ENERGY is LOW, PITCH is VERY_HIGH\nAnswer now."
    found = parse_token_block(prompt, template="{concept} is {value}")
    assert found == {"ENERGY": "LOW", "PITCH": "VERY_HIGH"}


def test_parse_token_block_rejects_a_template_without_fields():
    with pytest.raises(ValueError, match="must contain"):
        parse_token_block("x", template="{concept}")


def test_encode_tokens_one_hot():
    x = encode_tokens([{"ENERGY": "LOW", "VOICE_QUALITY": "MODAL"}, {}, {"PITCH": None}], n_bins=3)
    assert x.shape == (3, 5 * 3 + 6)
    assert x.sum(axis=1).tolist() == [2.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="not in the 3-bin vocabulary"):
        encode_tokens([{"ENERGY": "VERY_LOW"}], n_bins=3)


# -- training --------------------------------------------------------------------------------


def test_reference_is_deterministic(corpus):
    a, b = _fit(corpus, with_tokens=True), _fit(corpus, with_tokens=True)
    coef = [m.model["coef"] for m in (a, b)]
    np.testing.assert_array_equal(coef[0], coef[1])
    assert pickle.dumps(a) == pickle.dumps(b)
    other = _fit(corpus, with_tokens=True, seed=1)
    assert not np.array_equal(coef[0], other.model["coef"])  # the seed drives augmentation


@pytest.mark.parametrize("class_weight", ["balanced", None])
@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_fit_equals_scikit_learns_logistic_regression(corpus, n_classes, class_weight):
    """The reference model's own fit (SciPy's L-BFGS) finds scikit-learn's optimum, with
    and without balanced class weights (an unbalanced subset: the weights matter)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    manifest, embeddings, _ = corpus
    keep = manifest["label"].isin(AIBO_LABELS[:n_classes]).to_numpy()
    first = manifest["label"] == AIBO_LABELS[0]
    keep = keep & (~first.to_numpy() | (first.cumsum() <= first.sum() // 3).to_numpy())
    x, y = embeddings[keep], manifest.loc[keep, "label"].tolist()
    assert len(set(y)) == n_classes
    ours = fit_reference(
        x, y, labels=AIBO_LABELS[:n_classes], tokens=None, C=0.5, class_weight=class_weight,
        rng=None,
    )  # fmt: skip
    lr = LogisticRegression(C=0.5, class_weight=class_weight, tol=1e-10, max_iter=20000)
    theirs = make_pipeline(StandardScaler(), lr).fit(x, y)
    np.testing.assert_allclose(ours.model["mean"], theirs[0].mean_)
    np.testing.assert_allclose(ours.model["scale"], theirs[0].scale_)
    coef, intercept = ours.model["coef"], ours.model["intercept"]
    if n_classes == 2:  # scikit-learn's one binary row is the difference of our two
        coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
    else:  # softmax ignores a common shift of the (unpenalised) intercepts
        intercept = intercept - intercept.mean()
        lr.intercept_ = lr.intercept_ - lr.intercept_.mean()
    np.testing.assert_allclose(coef, lr.coef_, atol=1e-4)
    np.testing.assert_allclose(intercept, lr.intercept_, atol=1e-4)
    probe = embeddings + np.random.default_rng(0).normal(0, 0.5, embeddings.shape)
    assert ours.predict(probe, []) == theirs.predict(probe).tolist()


def test_a_column_constant_up_to_rounding_scales_as_in_scikit_learn(corpus):
    """A log-mel band at the floor in every training file: std ~1e-15, scale 1."""
    from sklearn.preprocessing import StandardScaler

    manifest, embeddings, _ = corpus
    x, labels = embeddings[:37].copy(), manifest["label"].tolist()[:37]
    x[:, 3] = np.log(1e-10)
    assert 0 < x[:, 3].std() < 1e-12  # rounding: not exactly 0
    mean, scale = standardisation(x)
    theirs = StandardScaler().fit(x)
    np.testing.assert_allclose(mean, theirs.mean_)
    np.testing.assert_allclose(scale, theirs.scale_)
    assert scale[3] == 1.0
    clf = fit_reference(x, labels, labels=AIBO_LABELS, tokens=None, C=0.5, rng=None)
    probe = x.copy()
    probe[:, 3] = np.log(1e-3)  # the band wakes up at prediction: no class takes over
    assert len(set(clf.predict(probe, []))) > 1


@pytest.mark.parametrize("with_tokens", [False, True])
def test_reference_beats_chance_on_held_out_demo(corpus, model_files, with_tokens):
    manifest, _, _ = corpus
    backend = ReferenceBackend.from_files(list(model_files.values()))
    requests = _requests(corpus, with_tokens=with_tokens)
    answers = backend.generate(requests)
    truth = manifest.set_index("utt_id").loc[[r.utt_id for r in requests], "label"]
    uar = balanced_accuracy_score(truth, answers)
    # chance is 1/5; measured 0.48 (audio) on the 64 held-out utterances
    assert uar > 0.35
    assert set(answers) <= set(AIBO_LABELS)


def test_tokens_change_the_answer_and_routing(corpus, model_files):
    audio = ReferenceClassifier.load(model_files["audio"])
    tokens = ReferenceClassifier.load(model_files["tokens"])
    both = ReferenceBackend(audio, tokens, revision="r")
    plain = _requests(corpus, with_tokens=False)
    cued = _requests(corpus, with_tokens=True)
    # no token block -> the audio classifier, whatever else is loaded
    x = np.vstack([embed_file(r.audio_path) for r in plain])
    assert both.generate(plain) == audio.predict(x, [])
    # a token block -> the tokens classifier, with the tokens read from the prompt
    _, _, table = corpus
    rows = table.set_index("utt_id").loc[[r.utt_id for r in cued], list(CONCEPT_COLUMNS)]
    assert both.generate(cued) == tokens.predict(x, rows.to_dict("records"))
    # a tokens-only backend answers both formats (trained with token dropout)
    only_tokens = ReferenceBackend(None, tokens, revision="r")
    assert only_tokens.generate(plain) == tokens.predict(x, [{}] * len(plain))
    assert isinstance(both, Backend)


def test_from_files_revision_names_the_weights(model_files):
    a = ReferenceBackend.from_files([model_files["audio"]])
    b = ReferenceBackend.from_files([model_files["audio"], model_files["tokens"]])
    assert a.info.revision != b.info.revision
    assert ReferenceBackend.from_files([model_files["audio"]]).info.revision == a.info.revision


def test_the_revision_is_the_files_whatever_their_order(corpus, model_files, tmp_path):
    """`--model-files` in any order name the same weights, so the same revision (and
    the answer journal's answers are found again); other files, another one."""
    import itertools

    from cueprobe import io
    from cueprobe.backends.reference import embedding_table

    manifest, _, _ = corpus
    table = embedding_table(manifest["utt_id"][:4], manifest["path"][:4])
    io.write_table(table, tmp_path / "logmel.parquet", "embeddings")
    files = [model_files["tokens"], tmp_path / "logmel.parquet", model_files["audio"]]
    revisions = {
        ReferenceBackend.from_files(order).info.revision for order in itertools.permutations(files)
    }
    assert len(revisions) == 1
    assert ReferenceBackend.from_files(files[:2]).info.revision not in revisions


def _unreadable(path: Path, how: str, model_files, monkeypatch) -> None:
    good = Path(model_files["audio"]).read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "cut short":  # a copy interrupted; save() itself writes atomically
        path.write_bytes(good[: len(good) // 2])
    elif how == "not a pickle":
        path.write_bytes(b"ENERGY=HIGH; PITCH=LOW\n")
    else:  # older: a sklearn `pipeline` field, and sklearn not in the cueprobe env
        import sys
        import types

        module = types.ModuleType("old_sklearn")
        Pipeline = type("Pipeline", (), {"__module__": "old_sklearn"})
        module.Pipeline = Pipeline
        monkeypatch.setitem(sys.modules, "old_sklearn", module)
        old = object.__new__(ReferenceClassifier)
        state = dict(ReferenceClassifier.load(model_files["audio"]).__dict__)
        state["pipeline"] = Pipeline()
        del state["model"]
        object.__setattr__(old, "__dict__", state)
        path.write_bytes(pickle.dumps(old, protocol=5))
        monkeypatch.delitem(sys.modules, "old_sklearn")


@pytest.mark.parametrize("how", ["empty", "cut short", "not a pickle", "older, needs sklearn"])
def test_a_model_file_that_cannot_be_unpickled_is_named(model_files, tmp_path, monkeypatch, how):
    """EOFError, UnpicklingError or ModuleNotFoundError came out of `cueprobe infer` as a
    traceback naming no file (main reports ValueError and OSError in one line only)."""
    path = tmp_path / "reference_audio.pkl"
    _unreadable(path, how, model_files, monkeypatch)
    with pytest.raises(ValueError, match=rf"{path} cannot be read as a reference classifier"):
        ReferenceClassifier.load(path)
    with pytest.raises(ValueError, match="Delete it to retrain"):
        ReferenceBackend.from_files([model_files["tokens"], path])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tokens": None, "labels": ["angry"]}, "not in the class set"),
        ({"tokens": "short"}, "rows for"),
        ({"n_bins": None}, "needs `n_bins`"),
    ],
)
def test_fit_reference_errors(corpus, kwargs, message):
    manifest, embeddings, tokens = corpus
    args = dict(
        labels=AIBO_LABELS,
        tokens=tokens,
        n_bins=5,
        token_template=TEMPLATE,
        token_separator=SEPARATOR,
        C=1.0,
        rng=np.random.default_rng(0),
    )
    args.update(kwargs)
    if isinstance(args["tokens"], str):
        args["tokens"] = tokens.head(3)
    with pytest.raises(ValueError, match=message):
        fit_reference(embeddings, manifest["label"].tolist(), **args)


def test_fit_reference_needs_two_classes_and_matching_shapes(corpus):
    _, embeddings, _ = corpus
    kw = dict(labels=AIBO_LABELS, tokens=None, C=1.0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"no utterance of class\(es\) \['emphatic', 'neutral'"):
        fit_reference(embeddings[:4], ["angry"] * 4, **kw)
    # a class the train split lacks: a classifier that could never answer it
    y = [lab for lab in AIBO_LABELS if lab != "positive"]
    y = (y * (len(embeddings) // len(y) + 1))[: len(embeddings)]
    with pytest.raises(ValueError, match=r"no utterance of class\(es\) \['positive'\]"):
        fit_reference(embeddings, y, **kw)
    with pytest.raises(ValueError, match="has shape"):
        fit_reference(embeddings[:4], ["angry"] * 3, **kw)


def test_backend_construction_errors(model_files, tmp_path):
    audio = ReferenceClassifier.load(model_files["audio"])
    tokens = ReferenceClassifier.load(model_files["tokens"])
    with pytest.raises(ValueError, match="needs an audio or a tokens"):
        ReferenceBackend(None, None, revision="r")
    with pytest.raises(ValueError, match="expected a 'audio' reference classifier"):
        ReferenceBackend(tokens, None, revision="r")
    other = ReferenceClassifier(**{**audio.__dict__, "labels": ("a", "b")})
    with pytest.raises(ValueError, match="disagree on the class set"):
        ReferenceBackend(other, tokens, revision="r")
    with pytest.raises(ValueError, match="two 'audio' reference classifiers"):
        ReferenceBackend.from_files([model_files["audio"], model_files["audio"]])
    (tmp_path / "x.pkl").write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ValueError, match="does not hold a ReferenceClassifier"):
        ReferenceClassifier.load(tmp_path / "x.pkl")


def test_the_token_augmentation_draws_the_voice_quality_values_the_rule_gives(corpus, monkeypatch):
    """The corrupt conditions draw only the values the rule's order can give; the token
    classifier's augmentation drew all six, so it trained on values no condition shows."""
    from cueprobe.backends import reference
    from cueprobe.interventions import corrupt

    drawn = []

    def spy(*args, **kwargs):
        out = corrupt(*args, **kwargs)
        drawn.extend(out["VOICE_QUALITY"])
        return out

    monkeypatch.setattr(reference, "corrupt", spy)
    manifest, embeddings, tokens = corpus
    train = (manifest["split"] == "train").to_numpy()
    values = ["UNVOICED", "BREATHY", "MODAL"]
    fit_reference(
        embeddings[train], manifest.loc[train, "label"].tolist(), labels=AIBO_LABELS,
        tokens=tokens[train].reset_index(drop=True), n_bins=5, token_template=TEMPLATE,
        token_separator=SEPARATOR, token_corrupt=1.0, C=1.0, rng=np.random.default_rng(0),
        voice_quality=values,
    )  # fmt: skip
    assert set(drawn) == set(values)


def test_unreadable_audio_embeds_as_nan_and_gets_an_error_answer(
    corpus, model_files, tmp_path, caplog
):
    """A file the features stage records `unreadable` (not audio, or NaN samples) crashed
    the reference path: embed_reference_audio died with a LibsndfileError, and a NaN
    embedding made a chance-level fit (training) or a confident label (inference)."""
    import soundfile

    from cueprobe.backends.reference import embedding_table
    from cueprobe.backends.reference import finite_rows

    manifest, _, _ = corpus
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt not audio at all")
    nan_samples = tmp_path / "nan.wav"
    soundfile.write(nan_samples, np.full(8000, np.nan), 16000, subtype="FLOAT")
    good = manifest["path"].iloc[0]
    table = embedding_table(["b", "n", "g"], [str(broken), str(nan_samples), good])
    assert finite_rows(table.drop(columns="utt_id").to_numpy()).tolist() == [False, False, True]
    assert str(broken) in caplog.text and str(nan_samples) in caplog.text
    backend = ReferenceBackend.from_files([model_files["audio"]])
    plain = _requests(corpus, with_tokens=False)[:2]
    bad = [
        Request("b", str(broken), plain[0].prompt, "b"),
        Request("n", str(nan_samples), plain[0].prompt, "n"),
    ]
    answers = backend.generate([plain[0], *bad, plain[1]])
    assert answers[1:3] == [None, None]  # error answers, not labels
    assert answers[0] in AIBO_LABELS and answers[3] in AIBO_LABELS
    assert answers[::3] == backend.generate(plain)  # the others as without them
    # from a precomputed table as well
    backend.use_embeddings(table)
    assert backend.generate(bad) == [None, None]


def test_embeddings_are_read_by_column_name(corpus, model_files):
    """Columns were read by position: a reordered table changed 29 of 31 answers, a
    tokens table passed as embeddings failed with "could not convert string to float"."""
    from cueprobe.backends.reference import embedding_table
    from cueprobe.backends.reference import embeddings_of

    manifest, _, tokens = corpus
    head = manifest.head(6)
    table = embedding_table(head["utt_id"].tolist(), head["path"].tolist())
    shuffled = table[["utt_id", *reversed(table.columns[1:].tolist())]]
    ids = head["utt_id"].tolist()
    assert np.array_equal(
        embeddings_of(shuffled, ids, n_mels=40, source="s"),
        embeddings_of(table, ids, n_mels=40, source="t"),
    )
    backend = ReferenceBackend.from_files([model_files["audio"]])
    requests = [Request(u, p, "Which emotion?", u) for u, p in zip(ids, head["path"], strict=True)]
    expected = backend.generate(requests)
    backend.use_embeddings(shuffled.assign(extra=1.0))
    assert backend.generate(requests) == expected
    with pytest.raises(ValueError, match=r"tok\.parquet: not a table of 40-band log-mel"):
        embeddings_of(tokens, ids, n_mels=40, source="tok.parquet")
    with pytest.raises(ValueError, match=r"not a table of 20-band.*it has 80 logmel_"):
        embeddings_of(table, ids, n_mels=20, source="e.parquet")
