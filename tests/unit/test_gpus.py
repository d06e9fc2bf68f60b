"""A model job on a workstation with several GPUs claims a card of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cueprobe.backends import gpus


@pytest.fixture
def held():
    """Closes the locks a test claimed in this process (the job's end frees its card)."""
    before = len(gpus._HELD)
    yield gpus._HELD
    for handle in gpus._HELD[before:]:
        handle.close()
    del gpus._HELD[before:]


def test_jobs_get_different_cards_and_a_freed_card_is_claimed_again(tmp_path, held):
    """Two model jobs under `--resources gpu=2` both ran on card 0 (CUDA counts from 0
    in every process; Snakemake names no card): each now takes a free one."""
    envs = [{}, {}, {}]
    assert gpus.claim_gpu(2, locks=tmp_path, environ=envs[0]) == "0"
    assert gpus.claim_gpu(2, locks=tmp_path, environ=envs[1]) == "1"
    assert [e.get("CUDA_VISIBLE_DEVICES") for e in envs] == ["0", "1", None]
    with pytest.raises(TimeoutError, match=rf"all 2 GPUs stayed held .*{tmp_path}"):
        gpus.claim_gpu(2, locks=tmp_path, environ=envs[2], wait_s=0.01, patience_s=0.05)
    assert "CUDA_VISIBLE_DEVICES" not in envs[2]
    held[-2].close()  # the job on card 0 ends
    assert gpus.claim_gpu(2, locks=tmp_path, environ=envs[2]) == "0"


def test_a_card_held_by_another_process_is_left_to_it(tmp_path, held):
    """The lock is the process's: another job's card is skipped until that job ends."""
    code = (
        "import sys; from cueprobe.backends import gpus; env = {}; "
        f"print(gpus.claim_gpu(3, locks=__import__('pathlib').Path({str(tmp_path)!r}), "
        "environ=env), env['CUDA_VISIBLE_DEVICES'], flush=True); sys.stdin.read()"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout.readline().split() == ["0", "0"]
        env: dict[str, str] = {}
        assert gpus.claim_gpu(3, locks=tmp_path, environ=env) == "1"
        assert env == {"CUDA_VISIBLE_DEVICES": "1"}
    finally:
        other.communicate("")  # it ends: its lock goes with it
    assert gpus.claim_gpu(3, locks=tmp_path, environ={}) == "0"


@pytest.mark.parametrize(
    ("env", "count"),
    [
        ({"CUDA_VISIBLE_DEVICES": "3"}, 4),  # the user's (or a scheduler's) choice stands
        ({"CUDA_VISIBLE_DEVICES": ""}, 4),  # the CPU, asked for
        ({"SLURM_JOB_ID": "7"}, 4),  # SLURM gave the job its cards
        ({}, 1),  # one card: nothing to choose
        ({}, 0),
    ],
)
def test_nothing_is_claimed_where_the_card_is_given_or_there_is_no_choice(
    tmp_path, held, env, count
):
    before = dict(env)
    assert gpus.claim_gpu(count, locks=tmp_path, environ=env) is None
    assert env == before and not list(tmp_path.iterdir())


def test_the_cards_are_counted_from_the_driver_without_cuda(tmp_path):
    for bus in ("0000:01:00.0", "0000:41:00.0", "0000:81:00.0"):
        (tmp_path / bus).mkdir()
    assert gpus.gpu_count(tmp_path) == 3
    assert gpus.gpu_count(tmp_path / "absent") == 0
    assert gpus.lock_dir().name.startswith("cueprobe-gpus-")


def test_the_transformers_backend_claims_its_card_before_cuda_starts(tmp_path, held, monkeypatch):
    """CUDA reads CUDA_VISIBLE_DEVICES once, when it starts (torch.cuda.is_available
    starts it): the card must be chosen before."""
    import torch

    from cueprobe.backends.hf import default_device

    for var in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID"):
        monkeypatch.setenv(var, "")  # recorded, so the claim's value is undone after
        monkeypatch.delenv(var)
    monkeypatch.setattr(gpus, "gpu_count", lambda: 2)
    monkeypatch.setattr(gpus, "lock_dir", lambda environ=None: tmp_path)
    seen = []
    monkeypatch.setattr(
        torch.cuda,
        "is_available",
        lambda: seen.append(__import__("os").environ.get("CUDA_VISIBLE_DEVICES")) or True,
    )
    assert default_device() == "cuda"
    assert seen == ["0"]
    assert (Path(tmp_path) / "gpu0.lock").exists()
    assert default_device() == "cuda" and seen == ["0", "0"]  # claimed once per process


def test_a_job_waits_for_a_card_until_another_job_frees_it(tmp_path, held, caplog, monkeypatch):
    """Every card held (another run's jobs): the job waits as long as it takes, as it
    waits for any resource (patience None, the backend's call), polling every wait_s and
    warning once, not every poll; a wait that raised at once would fail the job."""
    assert gpus.claim_gpu(2, locks=tmp_path, environ={}) == "0"
    assert gpus.claim_gpu(2, locks=tmp_path, environ={}) == "1"
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            held[-2].close()  # the job on card 0 ends, three polls in

    monkeypatch.setattr(gpus.time, "sleep", sleep)
    env: dict[str, str] = {}
    with caplog.at_level("WARNING", logger=gpus.__name__):
        assert gpus.claim_gpu(2, locks=tmp_path, environ=env, wait_s=7.0) == "0"
    assert env == {"CUDA_VISIBLE_DEVICES": "0"} and slept == [7.0, 7.0, 7.0]
    assert [r.getMessage() for r in caplog.records] == [
        f"all 2 GPUs are held by other cueprobe jobs (locks in {tmp_path}): waiting for one"
    ]


def test_the_lock_folder_is_made_where_absent_and_is_the_users_own(tmp_path, held):
    """The first job on a machine finds no lock folder (the default is under the
    temporary folder, per user: another user's folder there is not writable)."""
    import os

    locks = tmp_path / "fresh" / "cueprobe-gpus"
    assert gpus.claim_gpu(2, locks=locks, environ={}) == "0"
    assert (locks / "gpu0.lock").exists()
    assert gpus.lock_dir({}) == Path("/tmp") / f"cueprobe-gpus-{os.getuid()}"
    # a SLURM job's card numbers are its own: two jobs on one node both see "0,1"
    slurm = gpus.lock_dir({"SLURM_JOB_ID": "42"})
    assert slurm == Path("/tmp") / f"cueprobe-gpus-{os.getuid()}-slurm42"


def test_a_job_that_may_use_several_listed_cards_takes_one_of_them(tmp_path, held):
    """`CUDA_VISIBLE_DEVICES=2,3 snakemake --resources gpu=2` (or a local Snakemake in a
    SLURM allocation of two GPUs) put both jobs on card 2: the claim was off whenever
    the variable was set. One listed card, or the CPU, is still left alone."""
    envs = [{"CUDA_VISIBLE_DEVICES": "2,3"} for _ in range(3)]
    assert gpus.claim_gpu(locks=tmp_path, environ=envs[0]) == "2"
    assert gpus.claim_gpu(locks=tmp_path, environ=envs[1]) == "3"
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["2", "3", "2,3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu2.lock", "gpu3.lock"]
    with pytest.raises(TimeoutError, match="all 2 GPUs"):
        gpus.claim_gpu(locks=tmp_path, environ=envs[2], wait_s=0.01, patience_s=0.02)
    uuids = {"CUDA_VISIBLE_DEVICES": "GPU-8f1c, GPU-77aa", "SLURM_JOB_ID": "9"}
    assert gpus.claim_gpu(locks=tmp_path, environ=uuids) == "GPU-8f1c"
    assert uuids["CUDA_VISIBLE_DEVICES"] == "GPU-8f1c"
    for given in ("0", "", "-1", "-1,0"):
        env = {"CUDA_VISIBLE_DEVICES": given}
        assert gpus.claim_gpu(4, locks=tmp_path, environ=env) is None
        assert env == {"CUDA_VISIBLE_DEVICES": given}
