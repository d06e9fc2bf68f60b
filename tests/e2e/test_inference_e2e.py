"""The demo run through inference: every condition's predictions, and what re-runs when."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from cueprobe import io
from cueprobe.corpora import eval_splits
from cueprobe.interventions import ConditionSpec
from tests.e2e.conftest import E2E_CONFIG
from tests.e2e.conftest import REPO
from tests.e2e.conftest import snakemake

pytestmark = pytest.mark.slow

CONFIG = yaml.safe_load(E2E_CONFIG.read_text())
_GRID = CONFIG["interventions"]
GRID = ConditionSpec(
    tuple(_GRID["shuffle_seeds"]), tuple(_GRID["corrupt_p"]), tuple(_GRID["corrupt_seeds"])
)


QUERY_RULES = ("query_audio_only", "query_token_conditions")


def _dry_run(workdir, config) -> tuple[list[dict[str, str]], set[str]]:
    """Rule and wildcards of every inference job a dry run would schedule, and all rules."""
    proc = snakemake(workdir, "--cores", "2", "--dry-run", config=config)
    text = proc.stdout + proc.stderr
    jobs, rules = [], set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m:
            rules.add(m[1])
        if m and m[1] in QUERY_RULES:
            w = re.search(r"wildcards: (.*)", block)
            jobs.append({"rule": m[1]} | dict(kv.split("=", 1) for kv in w[1].split(", ")))
    return jobs, rules


def _changed_config(tmp_path, change) -> str:
    cfg = yaml.safe_load(E2E_CONFIG.read_text())
    change(cfg)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_every_condition_has_predictions_of_the_evaluated_utterances(demo_run):
    conditions = GRID.names()
    # the e2e grid: audio_only, aligned, 2 shuffles, conflict, 3 p x 2 seeds corruptions
    assert len(conditions) == 1 + 1 + 2 + 1 + 3 * 2
    for corpus, corpus_cfg in CONFIG["corpora"].items():
        manifest = io.read_table(demo_run / f"results/{corpus}/manifest.parquet", "manifest")
        for model, model_cfg in CONFIG["models"].items():
            splits = eval_splits(corpus_cfg, zero_shot=model_cfg.get("zero_shot", True))
            assert "train" not in splits  # the reference model never meets its training data
            expected = set(manifest.loc[manifest["split"].isin(splits), "utt_id"])
            folder = demo_run / f"results/{corpus}/predictions/{model}"
            shas, pairs = {}, {}
            for condition in conditions:
                pred = io.read_table(folder / f"{condition}.parquet", "predictions")
                assert set(pred["utt_id"]) == expected, (corpus, condition)
                assert set(pred["split"]) == set(splits)
                assert set(pred["parse_status"]) == {"exact"}  # the reference answers with labels
                check = json.loads((folder / f"{condition}.check.json").read_text())
                assert check["n"] == len(expected)
                shas[condition] = set(pred["prompt_sha"])
                pairs[condition] = set(zip(pred["utt_id"], pred["prompt_sha"], strict=True))
            assert len(shas["audio_only"]) == 1  # one audio-only prompt for everyone
            assert not shas["audio_only"] & shas["aligned"]
            # one journal per job; each distinct (utterance, prompt) was asked once
            journals = sorted(p.name for p in (folder / "journal").iterdir())
            assert journals == [  # each held by its job while it ran (a second one stops)
                ".audio_only.jsonl.lock", ".tokens.jsonl.lock", "audio_only.jsonl", "tokens.jsonl"
            ]  # fmt: skip
            rows = (folder / "journal/tokens.jsonl").read_text().splitlines()[1:]
            asked = [tuple(json.loads(r)[k] for k in ("utt_id", "prompt_sha")) for r in rows]
            assert len(asked) == len(set(asked))
            distinct = {(u, s) for c in conditions[1:] for u, s in pairs[c]}
            assert set(asked) == distinct
            # aligned and every corrupt_p0_s* carry the same prompts: asked once, shared
            assert len(distinct) < len(expected) * (len(conditions) - 1)


def test_reference_classifiers_are_trained_per_corpus(demo_run):
    for corpus in CONFIG["corpora"]:
        folder = demo_run / f"results/{corpus}/models/reference"
        assert sorted(p.name for p in folder.iterdir()) == [
            "reference_audio.pkl",
            "reference_tokens.pkl",
        ]


def test_new_bins_rerun_token_conditions_but_never_audio_only(demo_copy, tmp_path):
    config = _changed_config(tmp_path, lambda c: c.setdefault("tokens", {}).update(n_bins=3))
    jobs, rules = _dry_run(demo_copy, config)
    assert "train_reference_tokens" in rules and "train_reference_audio" not in rules
    assert "build_token_conditions" in rules and "build_audio_only_condition" not in rules
    # one job per (corpus, model) answers every token condition; audio_only is untouched
    assert sorted((j["rule"], j["corpus"]) for j in jobs) == sorted(
        ("query_token_conditions", c) for c in CONFIG["corpora"]
    )


def test_a_new_condition_reruns_the_token_job_but_asks_only_the_new_prompts(demo_copy, tmp_path):
    def more(cfg):
        cfg["interventions"]["shuffle_seeds"] = [*cfg["interventions"]["shuffle_seeds"], 99]

    config = _changed_config(tmp_path, more)
    corpus = next(iter(CONFIG["corpora"]))
    audio_only = demo_copy / f"results/{corpus}/predictions/reference/audio_only.parquet"
    before = audio_only.stat().st_mtime_ns
    snakemake(demo_copy, "--cores", "2", config=config)
    log = (demo_copy / f"logs/query_token_conditions/{corpus}/reference.log").read_text()
    folder = demo_copy / f"results/{corpus}/predictions/reference"
    n = len(io.read_table(folder / "shuffle_s99.parquet", "predictions"))
    old = len(io.read_table(folder / "aligned.parquet", "predictions"))
    # every prompt of the old conditions comes from the journal; only shuffle_s99 is asked
    m = re.search(r"(\d+) request\(s\), (\d+) already answered, (\d+) to go", log)
    assert m and int(m[3]) <= n and int(m[2]) >= old, m and m[0]
    assert audio_only.stat().st_mtime_ns == before


def test_a_new_root_seed_reruns_what_draws_at_random_but_no_audio_only_job(demo_copy, tmp_path):
    """The root seed was a param of every query job and of the audio classifier's
    training, which draw nothing at random: a new seed re-ran them (an ALM reloaded, an
    openai server asked every audio-only prompt again, its seed being the root one)."""
    jobs, rules = _dry_run(demo_copy, _changed_config(tmp_path, lambda c: c.update(seed=8)))
    assert {"build_token_conditions", "train_reference_tokens", "query_token_conditions"} <= rules
    assert not rules & {"query_audio_only", "train_reference_audio", "extract_features"}


@pytest.mark.parametrize(
    ("edited", "rerun"),
    [
        ("block", ["query_token_conditions"]),
        ("question", ["query_audio_only", "query_token_conditions"]),
    ],
)
def test_a_template_edit_reruns_only_the_inference_jobs_that_read_it(
    demo_copy, tmp_path, edited, rerun
):
    """The token prompt is the audio-only prompt plus the block: an edit of the block
    re-runs the token jobs only; an edit of the question is one to both templates."""
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    defaults = schema["properties"]["prompts"]["properties"]
    question, with_tokens = defaults["audio_only"]["default"], defaults["with_tokens"]["default"]

    def edit(cfg):
        if edited == "block":
            block = with_tokens.removeprefix(question)
            cfg["prompts"] = {"with_tokens": question + block.replace("Acoustic cues", "Cues")}
        else:
            cfg["prompts"] = {
                "audio_only": "Be careful. " + question,
                "with_tokens": "Be careful. " + with_tokens,
            }

    jobs, _ = _dry_run(demo_copy, _changed_config(tmp_path, edit))
    assert sorted((j["rule"], j["corpus"]) for j in jobs) == sorted(
        (r, c) for r in rerun for c in CONFIG["corpora"]
    )


def test_client_knobs_rerun_nothing_but_adding_a_model_runs_only_its_jobs(demo_copy, tmp_path):
    def knobs(cfg):
        cfg["models"]["reference"] |= {"concurrency": 3, "max_retries": 1, "timeout_s": 10}
        cfg["models"]["reference"] |= {"api_key_env": "MY_KEY"}  # where the key is, not it

    assert _dry_run(demo_copy, _changed_config(tmp_path, knobs)) == ([], set())

    def add(cfg):
        cfg["models"]["reference_b"] = dict(cfg["models"]["reference"])

    jobs, _ = _dry_run(demo_copy, _changed_config(tmp_path, add))
    assert {j["model"] for j in jobs} == {"reference_b"}
    assert sorted((j["rule"], j["corpus"]) for j in jobs) == sorted(
        (r, c) for r in QUERY_RULES for c in CONFIG["corpora"]
    )


def test_a_transformers_model_runs_through_the_workflow(demo_copy, tmp_path):
    """Adding a local ALM (a tiny random-weight Qwen2-Audio, loaded like a checkpoint):
    the whole default target runs its inference, evaluation and figures through the rules,
    zero-shot on every evaluated utterance, and re-runs nothing of the reference model."""
    pytest.importorskip("transformers")
    from cueprobe.summary import answer_alarms
    from tests.tiny_models import build_tiny_qwen2_audio

    model_dir = build_tiny_qwen2_audio(tmp_path / "tiny_qwen2_audio", chunk_length=2)

    def add(cfg):
        cfg["models"]["tiny"] = {
            "backend": "transformers",
            "model_id": model_dir,
            "architecture": "qwen2_audio",
            "dtype": "float32",
            "max_new_tokens": 3,
            "batch_size": 16,
        }

    config = _changed_config(tmp_path, add)
    proc = snakemake(demo_copy, "--cores", "2", config=config)
    ran = set(re.findall(r"(?:local)?rule (\w+):", proc.stdout + proc.stderr))
    assert ran >= {"query_audio_only", "query_token_conditions", "evaluate_model"}
    assert not ran & {"train_reference_audio", "train_reference_tokens", "extract_features"}
    for corpus, corpus_cfg in CONFIG["corpora"].items():
        manifest = io.read_table(demo_copy / f"results/{corpus}/manifest.parquet", "manifest")
        splits = eval_splits(corpus_cfg, zero_shot=True)  # IEMOCAP: "all"
        keep = manifest["split"].isin(splits) | ("all" in splits)
        expected = set(manifest.loc[keep, "utt_id"])
        folder = demo_copy / f"results/{corpus}/predictions/tiny"
        for condition in GRID.names():
            pred = io.read_table(folder / f"{condition}.parquet", "predictions")
            assert set(pred["utt_id"]) == expected, (corpus, condition)
            assert set(pred["model_id"]) == {model_dir}
            assert pred["raw_output"].notna().all()  # random weights: answered, mostly unparsed
        metrics = demo_copy / f"results/{corpus}/evaluation/tiny/metrics.parquet"
        assert len(io.read_table(metrics, "metrics")) > 0
        # random weights answer nonsense: the run ends saying so, per split (exit code 0)
        alarms = answer_alarms(
            io.read_table(metrics, "metrics"),
            io.read_table(metrics.with_name("confusion.parquet"), "confusion"),
        )
        assert any(alarms.values())
        for split, texts in alarms.items():
            for text in texts:
                assert f"{corpus}, tiny, {split}: {text}" in proc.stdout + proc.stderr
        assert f"{corpus}, reference," not in proc.stdout + proc.stderr
        assert (demo_copy / f"results/figures/{corpus}/tiny.confusions.png").exists()
    # IEMOCAP: a zero-shot model is scored on the full set, the reference on session 5
    tiny = io.read_table(
        demo_copy / "results/demo_iemocap/predictions/tiny/aligned.parquet", "predictions"
    )
    ref = io.read_table(
        demo_copy / "results/demo_iemocap/predictions/reference/aligned.parquet", "predictions"
    )
    assert set(ref["utt_id"]) < set(tiny["utt_id"])
    # new weights in the same folder: a plain run did nothing ("Nothing to be done"),
    # though README says new weights are asked again; only the tiny model's jobs re-run
    weights = next(Path(model_dir).glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # the last byte of the last tensor
    weights.write_bytes(bytes(data))
    jobs, _ = _dry_run(demo_copy, config)
    assert sorted((j["rule"], j["corpus"], j["model"]) for j in jobs) == sorted(
        (r, c, "tiny") for r in QUERY_RULES for c in CONFIG["corpora"]
    )
