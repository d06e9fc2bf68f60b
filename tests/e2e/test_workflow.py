"""The real workflow over the tiny demo: builds, validates, then does nothing twice."""

from __future__ import annotations

import pandas as pd
import pytest

from cueprobe import io
from tests.e2e.conftest import snakemake

pytestmark = pytest.mark.slow


def test_manifests_are_valid_and_nothing_is_lost(demo_run):
    for corpus in ("demo_iemocap", "demo_aibo"):
        manifest = io.read_table(demo_run / f"results/{corpus}/manifest.parquet", "manifest")
        excluded = io.read_table(demo_run / f"results/{corpus}/excluded.parquet", "excluded")
        params = pd.read_csv(demo_run / f"resources/demo/{corpus}/generating_params.csv")
        assert set(manifest["utt_id"]) | set(excluded["utt_id"]) == set(params["utt_id"])
        assert not set(manifest["utt_id"]) & set(excluded["utt_id"])


def test_second_run_does_nothing(demo_run):
    proc = snakemake(demo_run, "--cores", "2", "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_a_run_exits_when_its_jobs_are_done(demo_copy, outcome):
    """Snakemake's scheduler leaves a wake-up timer of the rate limit's timespan running,
    and the interpreter waited for it after the last job: here an hour (the timeout
    kills the run and fails the test), ~1 s after every default run."""
    table = "results/tables/table3.csv"
    if outcome == "failure":
        (demo_copy / "results/demo_iemocap/evaluation/reference/metrics.parquet").write_text("x")
    proc = snakemake(
        demo_copy,
        "--cores",
        "1",
        "--max-jobs-per-timespan",
        "100/1h",
        "--forcerun",
        "make_table",
        "--",
        table,
        check=outcome == "success",
        timeout=300,
    )
    assert (proc.returncode == 0) == (outcome == "success"), proc.stderr[-3000:]
    if outcome == "failure":
        assert "metrics.parquet" in proc.stderr
