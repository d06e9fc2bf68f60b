"""The demo workflow through a real single-node SLURM cluster gives the local run's results.

scripts/slurm/start-slurm.sh starts slurmctld, slurmd, slurmdbd (root, Debian);
Snakemake runs the tiny demo with `--workflow-profile profiles/slurm` from an
environment that adds the SLURM executor plugin (requirements/slurm.txt) on top of
this one: the plugin stays out of the main environment because it probes the
SLURM tools at every Snakemake start. Every job must pass through sbatch (its
SLURM job id in Snakemake's output, in sacct and in the name of its log under
logs/slurm/), and every table must equal a local run's.

Without root, or where the cluster cannot start, the test skips and says why;
under CI (CI=true) it fails instead, so that it never goes missing silently.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import cannot_run
from tests.e2e.conftest import E2E_CONFIG
from tests.e2e.conftest import REPO
from tests.e2e.conftest import snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(1200)]

SCRIPTS = REPO / "scripts/slurm"
SLURM_REQUIREMENTS = REPO / "requirements/slurm.txt"
SLURM_VENV = REPO / ".venv-slurm"
TARGETS: list[str] = []  # the default target
RUN_LIMIT_S = 600


def alive(pidfile: Path) -> bool:
    try:
        os.kill(int(pidfile.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def tail(text: str, n: int = 4000) -> str:
    return text[-n:]


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node cluster; stopped afterwards unless it was running before."""
    if os.geteuid() != 0:
        cannot_run("starting a SLURM cluster needs root (scripts/slurm/start-slurm.sh)")
    was_running = alive(Path("/run/slurm/slurmctld.pid"))
    try:
        proc = subprocess.run(
            [SCRIPTS / "start-slurm.sh"], capture_output=True, text=True, timeout=900
        )
    except subprocess.TimeoutExpired:
        cannot_run("scripts/slurm/start-slurm.sh did not finish in 15 min")
    if proc.returncode != 0:
        cannot_run(f"scripts/slurm/start-slurm.sh failed:\n{tail(proc.stdout + proc.stderr)}")
    yield
    if not was_running:
        subprocess.run([SCRIPTS / "stop-slurm.sh"], capture_output=True, check=True)


def purelib(python: Path | str) -> str:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def slurm_python() -> Path:
    """Python of .venv-slurm: this environment's packages plus the pinned SLURM plugins.

    A `.pth` file adds this environment's site-packages (with its own .pth files), so
    nothing but the two plugins (dependencies all in requirements/lock.txt) is installed.
    Rebuilt when the pins or the base environment change.
    """
    base = sysconfig.get_paths()["purelib"]
    stamp = SLURM_VENV / "cueprobe-stamp.txt"
    want = f"{base}\n{SLURM_REQUIREMENTS.read_text()}"
    python = SLURM_VENV / "bin/python"
    if stamp.is_file() and stamp.read_text() == want and python.exists():
        return python
    steps = [
        [sys.executable, "-m", "venv", "--clear", "--without-pip", SLURM_VENV],
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
        + ["--disable-pip-version-check", "--no-deps", "-r", SLURM_REQUIREMENTS],
    ]
    for i, step in enumerate(steps):
        proc = subprocess.run(step, capture_output=True, text=True)
        if proc.returncode != 0:
            cannot_run(f"building {SLURM_VENV} failed:\n{tail(proc.stdout + proc.stderr)}")
        if i == 0:
            pth = Path(purelib(python)) / "_cueprobe_base.pth"
            pth.write_text(f"import site; site.addsitedir({base!r})\n")
    stamp.write_text(want)
    return python


def demo_group_components(profile: dict) -> list[str]:
    """The profile's group sizes, but the demo's tiny CPU inference jobs (and their
    evaluations) all in one job, and one feature shard a job (so that its CPUs are its own threads', not a sum)."""
    sizes = profile["group-components"] | {"inference": 1000, "features": 1, "evaluation": 1000}
    return [f"{group}={n}" for group, n in sizes.items()]


def run_through_slurm(python: Path, workdir: Path) -> subprocess.CompletedProcess:
    """The demo through SLURM, from ``workdir`` (the plugin's log dir is relative to it)."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    bindir = str(python.parent)
    env = os.environ | {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    cmd = [
        python,
        "-m",
        "snakemake",
        "--snakefile",
        REPO / "Snakefile",
        "--configfile",
        E2E_CONFIG,
        "--workflow-profile",
        REPO / "profiles/slurm",
        # poll every second: the profile's 30 s suit a shared cluster, not a test
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
        "--latency-wait",
        "5",
        # the test node has 2 CPUs: a (group) job asking for more would pend forever
        "--cores",
        "2",
        "--group-components",
        *demo_group_components(profile),
        *TARGETS,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=RUN_LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # it ignores SIGTERM while polling
        out, _ = proc.communicate()
        ids = re.findall(r"SLURM jobid (\d+)", out)
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True)
        pytest.fail(f"the SLURM run took over {RUN_LIMIT_S} s:\n{tail(out)}")
    if proc.returncode != 0:
        pytest.fail(f"the SLURM run failed:\n{tail(out, 8000)}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def read_result(path: Path, workdir: Path):
    """A result table (or JSON) with the run's own directory taken out of every path."""
    if path.suffix == ".json":
        return json.loads(path.read_text().replace(str(workdir), "<workdir>"))
    table = pd.read_parquet(path)
    for column in table.columns:
        if table[column].dtype == object or pd.api.types.is_string_dtype(table[column]):
            table[column] = table[column].str.replace(str(workdir), "<workdir>", regex=False)
    return table


def results(workdir: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(workdir)): p
        for p in sorted((workdir / "results").rglob("*"))
        if p.suffix in (".parquet", ".json")
    }


def test_demo_through_slurm_equals_local_run(slurm_cluster, slurm_python, tmp_path):
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    cluster.mkdir()
    snakemake(local, "--cores", "2", *TARGETS)

    start = time.monotonic()
    proc = run_through_slurm(slurm_python, cluster)
    elapsed = time.monotonic() - start

    # Every job went through sbatch: nothing but the target rule ran locally.
    ids = re.findall(r"has been submitted with SLURM jobid (\d+)", proc.stdout)
    assert ids, f"no job was submitted to SLURM:\n{tail(proc.stdout)}"
    local_rules = set(re.findall(r"^localrule (\w+):", proc.stdout, flags=re.MULTILINE))
    assert local_rules <= {"all"}, f"rules that ran outside SLURM: {local_rules}"
    finished = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", proc.stdout)
    assert len([r for r in finished if r != "all"]) >= len(ids)
    sacct = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-o", "JobID,State,AllocCPUS", "-j", ",".join(ids)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {job: (state, int(cpus)) for job, state, cpus in (r.split("|") for r in sacct.split())}
    assert {job: state for job, (state, _) in rows.items()} == dict.fromkeys(ids, "COMPLETED")
    logs = {p.stem: p for p in (cluster / "logs/slurm").rglob("*.log")}
    assert set(ids) <= set(logs), f"SLURM logs missing under logs/slurm/: {set(ids) - set(logs)}"
    # openSMILE jobs get the CPUs of their threads (4, capped by --cores 2), not the
    # 1 CPU a profile-wide cpus_per_task would give every job
    # (a group job's log folder: group_<group>_<its rules>)
    features = [job for job in ids if logs[job].parent.name.startswith("group_features_")]
    assert features, sorted(str(logs[j].relative_to(cluster)) for j in ids)
    assert {rows[job][1] for job in features} == {2}, sacct

    # The same results as the local run, table by table.
    expected, got = results(local), results(cluster)
    assert expected, "the local run wrote no results"
    assert sorted(got) == sorted(expected)
    for name, path in expected.items():
        want, have = read_result(path, local), read_result(got[name], cluster)
        if isinstance(want, pd.DataFrame):
            pd.testing.assert_frame_equal(have, want, obj=name)
        else:
            assert have == want, name
    print(f"\nSLURM run: {elapsed:.0f} s, {len(ids)} sbatch jobs for {len(finished)} rule jobs")
