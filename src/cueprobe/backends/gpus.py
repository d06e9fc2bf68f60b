"""One GPU per model job on a workstation: the job claims a free card before CUDA starts.

Snakemake's local executor counts GPUs (``--resources gpu=2``) but does not say which
card a job gets (snakemake/snakemake#281), and CUDA numbers from 0 in every process:
two model jobs both ran on card 0 (out of memory, or half as fast) while card 1 idled.
So a job that sees several GPUs and was not told which (no ``CUDA_VISIBLE_DEVICES``, not
a SLURM job: SLURM sets it) takes the first card whose lock file it can lock, and sets
``CUDA_VISIBLE_DEVICES`` to it before torch starts CUDA. The lock is an ``flock`` held
until the process ends (a killed job frees its card too); the files are per user, under
the temporary folder. The count comes from the driver's ``/proc`` entries: asking torch
would start CUDA, after which ``CUDA_VISIBLE_DEVICES`` is no longer read.

A job whose model needs several cards names them itself (``CUDA_VISIBLE_DEVICES``): the
``transformers`` backend loads a model onto one device.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path

log = logging.getLogger(__name__)

#: one entry per NVIDIA GPU the driver sees (Linux)
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")

#: the lock files of the cards this process holds, open for the life of the process
_HELD: list = []


def lock_dir() -> Path:
    """Where the cards' lock files are: per user, under the temporary folder."""
    return Path(tempfile.gettempdir()) / f"cueprobe-gpus-{os.getuid()}"


def gpu_count(gpus: Path = NVIDIA_GPUS) -> int:
    """GPUs the NVIDIA driver sees, without starting CUDA (0 without the driver)."""
    try:
        return sum(1 for _ in gpus.iterdir())
    except OSError:
        return 0


def claim_gpu(
    count: int | None = None,
    *,
    locks: Path | None = None,
    environ: MutableMapping[str, str] | None = None,
    wait_s: float = 5.0,
    patience_s: float | None = None,
) -> int | None:
    """Claim a free GPU for this process and make it the only one CUDA shows it.

    Returns the card's number, or None where nothing is claimed: one GPU or none,
    ``CUDA_VISIBLE_DEVICES`` already set (by the user, SLURM for ``--gpus``, or an
    earlier claim), or a SLURM job. Where every card is held by another job, waits,
    polling every ``wait_s`` seconds (for ``patience_s`` at most; None: as long as it
    takes, as a job waits for any resource). Snakemake's ``--resources gpu=N``, N the
    number of cards, never lets its own jobs wait.

    Examples
    --------
    >>> env = {"CUDA_VISIBLE_DEVICES": "1"}
    >>> claim_gpu(4, environ=env) is None, env["CUDA_VISIBLE_DEVICES"]
    (True, '1')
    >>> claim_gpu(1, environ={}) is None
    True
    """
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env or "SLURM_JOB_ID" in env:
        return None
    count = gpu_count() if count is None else count
    if count <= 1:
        return None
    folder = lock_dir() if locks is None else locks
    folder.mkdir(parents=True, exist_ok=True)
    start, told = time.monotonic(), False
    while True:
        for card in range(count):
            handle = open(folder / f"gpu{card}.lock", "a")  # noqa: SIM115 (held: the lock)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _HELD.append(handle)
            env["CUDA_VISIBLE_DEVICES"] = str(card)
            log.info("GPU %d of %d is this job's (CUDA_VISIBLE_DEVICES=%d)", card, count, card)
            return card
        waited = time.monotonic() - start
        if patience_s is not None and waited >= patience_s:
            raise TimeoutError(
                f"all {count} GPUs stayed held by other cueprobe jobs for {waited:.0f} s "
                f"(their locks: {folder})"
            )
        if not told:
            log.warning(
                "all %d GPUs are held by other cueprobe jobs (locks in %s): waiting for one",
                count,
                folder,
            )
            told = True
        time.sleep(wait_s)
