"""Run the real workflow with the real `snakemake` over the tiny demo config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
E2E_CONFIG = REPO / "tests/e2e/config.yaml"


def snakemake(
    workdir: Path,
    *args: str,
    config: Path = E2E_CONFIG,
    check: bool = True,
    timeout: float | None = None,
):
    """Run snakemake from this venv in ``workdir``; return the CompletedProcess.

    ``timeout`` (seconds) is for tests of a hang: the run is killed and the test fails.
    """
    bindir = str(Path(sys.executable).parent)
    env = os.environ | {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    cmd = [
        f"{bindir}/snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        *args,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """A finished run of the whole default target over the tiny demo (built once)."""
    workdir = tmp_path_factory.mktemp("demo_run")
    snakemake(workdir, "--cores", "2")
    return workdir


@pytest.fixture
def demo_copy(demo_run, tmp_path) -> Path:
    """A private copy of the finished run, for tests that change config or files."""
    dst = tmp_path / "run"
    shutil.copytree(demo_run, dst, symlinks=True)
    return dst
