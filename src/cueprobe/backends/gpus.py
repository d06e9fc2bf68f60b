"""One GPU per model job: the job claims a free card before CUDA starts.

Snakemake's local executor counts GPUs (``--resources gpu=2``) but does not say which
card a job gets (snakemake/snakemake#281), and CUDA numbers from 0 in every process:
two model jobs both ran on card 0 (out of memory, or half as fast) while card 1 idled.
So a job that may use several cards (``CUDA_VISIBLE_DEVICES`` unset and the driver
showing several, or ``CUDA_VISIBLE_DEVICES`` listing several: a workstation, or a SLURM
allocation of several GPUs that a local Snakemake runs in) takes the first of them whose
lock file it can lock, and sets ``CUDA_VISIBLE_DEVICES`` to that card before torch starts
CUDA. A job given one card (SLURM's ``--gpus=1``, or you) is left alone, and so is
``CUDA_VISIBLE_DEVICES=""`` (the CPU).

The lock is an ``flock`` held until the process ends (a killed job frees its card too).
Lock files are per user under ``/tmp`` (not ``$TMPDIR``, which jobs may set apart), and
per SLURM job inside one, whose card numbers are its own. The count comes from the
driver's ``/proc`` entries: asking torch would start CUDA, after which
``CUDA_VISIBLE_DEVICES`` is no longer read. The ``transformers`` backend loads a model
onto one card.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping
from collections.abc import MutableMapping
from pathlib import Path

log = logging.getLogger(__name__)

#: one entry per NVIDIA GPU the driver sees (Linux)
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")

#: the lock files of the cards this process holds, open for the life of the process
_HELD: list = []


def lock_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the cards' lock files are: per user, and per SLURM job inside one."""
    env = os.environ if environ is None else environ
    base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
    job = f"-slurm{env['SLURM_JOB_ID']}" if env.get("SLURM_JOB_ID") else ""
    return base / f"cueprobe-gpus-{os.getuid()}{job}"


def gpu_count(gpus: Path = NVIDIA_GPUS) -> int:
    """GPUs the NVIDIA driver sees, without starting CUDA (0 without the driver)."""
    try:
        return sum(1 for _ in gpus.iterdir())
    except OSError:
        return 0


def candidate_cards(environ: Mapping[str, str], count: int | None = None) -> list[str]:
    """The cards this job may choose from (``CUDA_VISIBLE_DEVICES`` entries), or [].

    Examples
    --------
    >>> candidate_cards({"CUDA_VISIBLE_DEVICES": "2,3"}), candidate_cards({}, count=2)
    (['2', '3'], ['0', '1'])
    >>> candidate_cards({"CUDA_VISIBLE_DEVICES": "1"}), candidate_cards({}, count=1)
    ([], [])
    >>> candidate_cards({"CUDA_VISIBLE_DEVICES": ""}), candidate_cards({"CUDA_VISIBLE_DEVICES": "-1,0"})
    ([], [])
    >>> candidate_cards({"SLURM_JOB_ID": "7"}, count=4)  # a SLURM job without GPUs
    []
    """
    given = environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        cards = [c.strip() for c in given.split(",")]
        if "" in cards or "-1" in cards:  # the CPU asked for, or a list CUDA cuts short
            return []
    elif environ.get("SLURM_JOB_ID"):  # SLURM names a job's cards; none named: none
        return []
    else:
        cards = [str(k) for k in range(gpu_count() if count is None else count)]
    return cards if len(cards) > 1 else []


def claim_gpu(
    count: int | None = None,
    *,
    locks: Path | None = None,
    environ: MutableMapping[str, str] | None = None,
    wait_s: float = 5.0,
    patience_s: float | None = None,
) -> str | None:
    """Claim a free card of those this job may use, and make it the only one CUDA shows.

    Returns the card (as ``CUDA_VISIBLE_DEVICES`` names it), or None where there is
    nothing to choose (:func:`candidate_cards`; after a claim, the one card claimed).
    ``count`` stands for the driver's count (tests). Where every card is held by another
    job, waits, polling every ``wait_s`` seconds (for ``patience_s`` at most; None: as
    long as it takes, as a job waits for any resource). Snakemake's ``--resources
    gpu=N``, N the number of cards, never lets its own jobs wait.

    Examples
    --------
    >>> env = {"CUDA_VISIBLE_DEVICES": "1"}
    >>> claim_gpu(4, environ=env) is None, env["CUDA_VISIBLE_DEVICES"]
    (True, '1')
    >>> claim_gpu(1, environ={}) is None
    True
    """
    env = os.environ if environ is None else environ
    cards = candidate_cards(env, count)
    if not cards:
        return None
    folder = lock_dir(env) if locks is None else locks
    folder.mkdir(parents=True, exist_ok=True)
    start, told = time.monotonic(), False
    while True:
        for card in cards:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", card)  # an index, or a GPU-/MIG- UUID
            handle = open(folder / f"gpu{name}.lock", "a")  # noqa: SIM115 (held: the lock)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _HELD.append(handle)
            env["CUDA_VISIBLE_DEVICES"] = card
            log.info("GPU %s of %s is this job's (CUDA_VISIBLE_DEVICES=%s)", card, cards, card)
            return card
        waited = time.monotonic() - start
        if patience_s is not None and waited >= patience_s:
            raise TimeoutError(
                f"all {len(cards)} GPUs stayed held by other cueprobe jobs for {waited:.0f} s "
                f"(their locks: {folder})"
            )
        if not told:
            log.warning(
                "all %d GPUs are held by other cueprobe jobs (locks in %s): waiting for one",
                len(cards),
                folder,
            )
            told = True
        time.sleep(wait_s)
