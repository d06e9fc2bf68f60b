"""Config files validate against the schema; a mistyped key fails naming the key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


@pytest.mark.parametrize(
    "path", ["config/config.yaml", "config/paper.yaml", "tests/e2e/config.yaml"]
)
def test_shipped_configs_validate(path):
    config = yaml.safe_load((REPO / path).read_text())
    validate(config, str(SCHEMA))
    # defaults are filled in from the schema, nested ones included
    assert config["tokens"]["n_bins"] >= 2
    assert all("shards" in c for c in config["corpora"].values())


def _snakemake(*args, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """This venv's snakemake (and, on PATH, its python) with ``args``."""
    bindir = Path(sys.executable).parent
    return subprocess.run(
        [bindir / "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ | {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"},
    )


def _dry_run(tmp_path: Path, config_text: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config_text)
    return _snakemake(
        "-n", "--snakefile", REPO / "Snakefile", "--directory", tmp_path, "--configfile", cfg
    )


BASE = """
seed: 1
corpora:
  c1: {adapter: demo-iemocap%s}
models:
  reference: {backend: reference, zero_shot: false}
"""


def test_mistyped_key_fails_naming_it(tmp_path):
    proc = _dry_run(tmp_path, BASE % ", shardz: 3")
    assert proc.returncode != 0
    assert "'shardz' was unexpected" in proc.stdout + proc.stderr


def test_wrong_type_fails_naming_it(tmp_path):
    proc = _dry_run(tmp_path, BASE % ", shards: many")
    assert proc.returncode != 0
    assert "'many' is not of type 'integer'" in proc.stdout + proc.stderr


def test_real_corpus_needs_a_root(tmp_path):
    proc = _dry_run(tmp_path, BASE.replace("demo-iemocap", "iemocap") % "")
    assert proc.returncode != 0
    assert "'root' is a required property" in proc.stdout + proc.stderr


def test_configfile_replaces_the_default(tmp_path):
    # the workflow profile sets replace-workflow-config: the demo corpora of
    # config/config.yaml must not be merged into a user's config
    cfg = tmp_path / "c.yaml"
    cfg.write_text(BASE % "")
    proc = _snakemake("-n", "--configfile", cfg)
    out = proc.stdout + proc.stderr
    assert "is replaced by additional config" in out
    assert "demo_aibo" not in out


def test_model_resources_reach_the_inference_jobs(tmp_path):
    config = BASE.replace(
        "reference: {backend: reference, zero_shot: false}",
        "reference: {backend: reference, zero_shot: false, resources: "
        "{gpu: 0, mem_mb: 3000, runtime: 7, slurm_partition: gpu, constraint: a100}}",
    )
    proc = _dry_run(tmp_path, config % "")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    jobs = re.findall(
        r"^rule query_(?:audio_only|token_conditions):\n.*?^    resources: ([^\n]*)",
        out,
        re.M | re.S,
    )
    assert jobs
    for resources in jobs:
        assert "mem_mb=3000" in resources and "runtime=7" in resources
        assert "slurm_partition=gpu" in resources and "constraint=a100" in resources


def test_slurm_profile_groups_name_every_rule():
    """A renamed rule must not silently fall out of its SLURM group (it would then cost
    one sbatch submission, ~5 s, per job); a stale name must not linger either."""
    proc = _snakemake("--list-rules", "--snakefile", REPO / "Snakefile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rules = set(proc.stdout.split()) - {"all"}
    assert {"evaluate_model", "plot_evaluation", "query_token_conditions"} <= rules
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert set(profile["groups"]) == rules
    assert set(profile["groups"].values()) == set(profile["group-components"])
