"""Changing the token bins re-runs the token rule and never a feature job (DESIGN: Incremental)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.e2e.conftest import E2E_CONFIG
from tests.e2e.conftest import snakemake

pytestmark = pytest.mark.slow


def _scheduled(proc) -> dict[str, int]:
    """Rule -> job count from the dry run's 'Job stats' table."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {
        m[1]: int(m[2])
        for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)
        if m[1] != "total"
    }


def test_no_op_run_schedules_nothing(demo_copy):
    assert _scheduled(snakemake(demo_copy, "--cores", "2", "--dry-run")) == {}


def test_changing_n_bins_reruns_tokens_but_no_feature_job(demo_copy, tmp_path):
    cfg = yaml.safe_load(E2E_CONFIG.read_text())
    assert cfg.get("tokens", {}).get("n_bins", 5) == 5
    # as README says: a second config file holding only the change, merged after the first
    bins = tmp_path / "bins.yaml"
    bins.write_text("tokens: {n_bins: 3}\n")
    jobs = _scheduled(snakemake(demo_copy, str(bins), "--cores", "2", "--dry-run"))
    assert jobs.get("assign_tokens") == len(cfg["corpora"]), jobs
    assert "extract_features" not in jobs and "gather_features" not in jobs, jobs
    assert "build_manifest" not in jobs and "make_demo_corpus" not in jobs, jobs


def test_a_new_answer_synonym_reruns_inference_but_no_manifest_or_feature_job(demo_copy, tmp_path):
    """Synonyms matter to the answer parser only: the manifest and features stay."""
    from cueprobe.corpora import corpus_labels

    cfg = yaml.safe_load(E2E_CONFIG.read_text())
    corpus = cfg["corpora"]["demo_iemocap"]
    labels = corpus_labels({"adapter": "iemocap", "labels": None})
    corpus["labels"] = labels | {"sad": [*labels["sad"], "gloomy"]}
    changed = tmp_path / "config.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    jobs = _scheduled(snakemake(demo_copy, "--cores", "2", "--dry-run", config=changed))
    assert jobs.get("query_audio_only") == 1 and jobs.get("query_token_conditions") == 1, jobs
    for rule in ("build_manifest", "extract_features", "gather_features", "train_reference_audio",
                 "train_reference_tokens", "assign_tokens", "plot_token_distribution"):  # fmt: skip
        assert rule not in jobs, jobs
