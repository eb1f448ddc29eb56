"""How many CPU threads rnnlab computes with: ``--threads N`` (the ``threads`` config key for training), or
a default that looks at the machine first.

Measured on the 2-core development VM (benchmarks/results.md, 2026-12-01): char-rnn trains 2.1x faster on two
threads than on one when the machine is idle, and 0.57x as fast as soon as another process keeps one core
busy: OpenMP's threads wait for each other, and one of them waits for the core it shares. So the default is
``OMP_NUM_THREADS`` when the user set it, else the cores that are free now (the cores less the load average
of the last minute, at least one); sampling, one token or point at a time, uses one (8,278 against 5,000
chars/s for char-rnn) unless told otherwise.
"""

from contextlib import contextmanager
import os

import torch

from .errors import UserError

MAX_THREADS = 1024  # a --threads past any machine's cores is a typo


def check_threads(count: int, name: str) -> None:
    """Refuse a thread count outside 1 .. MAX_THREADS, naming it as ``name`` (a parameter, or a flag)."""
    if not 1 <= count <= MAX_THREADS:
        raise UserError(f"{name} must be between 1 and {MAX_THREADS}, got {count}")


def free_cores() -> int:
    """The CPU cores this process may use, less the ones other work keeps busy (the 1-minute load average)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:  # no load average (some containers): assume an idle machine
        busy = 0.0
    return max(1, min(cores, round(cores - busy)))


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when it is set to a number (the user's choice, torch's too), else :func:`free_cores`."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    return int(given) if given.isdigit() and int(given) > 0 else free_cores()


@contextmanager
def threads(count: int = 0):
    """torch's intra-op thread count set to ``count`` (0: :func:`default_threads`) while the block runs, the
    caller's setting restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(count or default_threads())
    try:
        yield
    finally:
        torch.set_num_threads(before)
