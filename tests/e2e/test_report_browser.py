"""The HTML report of the demo run opens in headless Chromium and shows the results."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib import image as mpimg

from tests.conftest import cannot_run
from tests.e2e.conftest import snakemake

pytestmark = pytest.mark.slow

# flags that keep Chromium off the network and quiet on a machine without a screen
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, installed with apt-get where the test runs as root."""
    path = shutil.which("chromium")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(cmd, env=env, capture_output=True, timeout=600)
        path = shutil.which("chromium")
    if path is None:
        cannot_run("no chromium, and it cannot be installed here (needs root and apt-get)")
    return path


def test_report_opens_in_chromium(demo_copy, chromium, tmp_path):
    snakemake(demo_copy, "--cores", "1", "--report", "results/report.html")
    report = demo_copy / "results/report.html"
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,900",
            "--virtual-time-budget=8000",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert shot.exists(), proc.stderr[-3000:]
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (900, 1280)
    # the page rendered: not a blank canvas but text and widgets in several colours
    assert len(np.unique(pixels.reshape(-1, 3).round(2), axis=0)) > 20
    assert pixels.std() > 0.05
    # and the DOM Chromium built holds our categories, with no docutils error block
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=8000",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    assert "Concept tokens" in dom and "Evaluation" in dom
    assert "System Message" not in dom
