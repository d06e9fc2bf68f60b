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
