"""More than one process: a training started by ``torchrun`` runs on ``torch.distributed`` with
``DistributedDataParallel`` (gloo for CPU tensors, NCCL for CUDA ones), and computes what one process
computes at the same ``batch_size``.

torchrun starts N processes and tells each its ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`from_env`
reads them into a :class:`World`. The global batch is cut into N equal blocks of rows, one per rank::

    global batch (batch_size B = 8 rows), 2 ranks      rank 0: rows 0-3      rank 1: rows 4-7
    a TBPTT stream's rows                               each rank carries its own rows' state
    a shuffled batch of lines or sequences              the same batch on every rank (the order is a
                                                        function of the step), each takes its block

Each rank's loss is its share of the batch's loss (1/N of it for equal rows or lines; its tokens' share when
the loss is a mean over masked tokens: ``Task.loss_is_token_mean``) and DDP sums the gradients, so the
step is one process's step, and every gradient inside the graph (Graves' clamped derivatives) has the size
one process gives it. Once per step every rank contributes to one small all-reduce: the loss, the
gradient norm, the tokens, whether its carried state is finite and whether it was asked to stop, so that
every rank skips a non-finite step, logs the same loss and stops at the same step together. Evaluation is
split across the ranks and its sums reduced. Rank 0 alone writes the run folder.
"""

import atexit
from dataclasses import dataclass
import datetime
import os
import re
import socket

import torch
import torch.distributed as dist

from .errors import UserError

DEFAULT_TIMEOUT_SECONDS = 300.0  # a collective that waits longer than this fails instead of hanging
MAX_PROCESSES = 1024  # a --nproc past any machine's cores is a typo


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size``, ``local_rank`` on its machine, and how many
    times torchrun has ``restarted`` the job (``--max-restarts``)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    restarts: int = 0

    @property
    def writer(self) -> bool:
        """Rank 0 writes the run folder, logs and shows the progress bar."""
        return self.rank == 0

    def part(self, n: int) -> range:
        """This rank's part of ``n`` rows or items: contiguous, as equal as ``n`` allows (equal when ``size``
        divides ``n``, as it divides ``batch_size``: :func:`check_batch`; an epoch's short last batch of
        shuffled lines may leave some ranks one row fewer)."""
        return range(self.rank * n // self.size, (self.rank + 1) * n // self.size)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over the ranks (itself in one process)."""
        if self.size > 1:
            values = values.clone()
            dist.all_reduce(values)
        return values

    def total(self, *numbers: float) -> list[float]:
        """Python numbers summed over the ranks, in float64 (for evaluation sums)."""
        return self.sum(torch.tensor(numbers, dtype=torch.float64)).tolist()

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def rows(self, batch, dim: int = 0):
        """This rank's block of every tensor in ``batch`` (a tensor, or tuples, lists and dicts of them) along
        ``dim``; anything else as it is."""
        if self.size == 1:
            return batch
        if isinstance(batch, torch.Tensor):
            part = self.part(batch.size(dim))
            return batch[(slice(None),) * dim + (slice(part.start, part.stop),)]
        if isinstance(batch, (tuple, list)):
            return type(batch)(self.rows(b, dim) for b in batch)
        if isinstance(batch, dict):
            return {k: self.rows(v, dim) for k, v in batch.items()}
        return batch

    def gather_rows(self, state, dim: int = 1):
        """The blocks of a carried state (tensors ``(layers, rows, width)``: torch.nn.RNN's layout, rows at
        ``dim`` 1) of every rank put back together in rank order: the global state, for a checkpoint."""
        if self.size == 1 or state is None:
            return state
        if isinstance(state, torch.Tensor):
            pieces = [torch.empty_like(state) for _ in range(self.size)]
            dist.all_gather(pieces, state.contiguous())
            return torch.cat(pieces, dim)
        return type(state)(self.gather_rows(s, dim) for s in state)


SINGLE = World()


def from_env() -> World:
    """The world torchrun describes in the environment (one process of one when it is not there)."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size == 1:
        return SINGLE
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")),
                 int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0))


def job_id() -> str | None:
    """The id torchrun gives this job (``--rdzv-id``; ``--standalone`` makes one up), the same in every
    process and attempt; None when it gave none: a restart then cannot tell the job's own checkpoint."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    return run_id if run_id and run_id != "none" else None


def check_batch(batch_size: int, world: World) -> None:
    if batch_size % world.size:
        raise UserError(f"batch_size {batch_size} is the global batch and must divide among the {world.size} "
                        f"processes; use a multiple of {world.size} (--set batch_size={world.size * max(1, batch_size // world.size)})")


def device_of(device: torch.device, world: World) -> torch.device:
    """A training's device in this process: its own GPU (``cuda:LOCAL_RANK``) in a job of several."""
    return torch.device("cuda", world.local_rank) if device.type == "cuda" and world.size > 1 else device


def join(world: World, device: torch.device, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
    """Join the process group of ``world`` (nothing in one process, or when joined already): gloo for a
    training on the CPU, and for a training on ``device`` cuda NCCL for its tensors (gloo for the CPU ones);
    a collective waits at most ``timeout`` seconds.
    The group lasts as long as the process (torchrun's store does not take a second start of the same group),
    so a script that trains several runs in one job shares it, and the first run's timeout."""
    if world.size == 1 or dist.is_initialized():
        return
    on_gpu = device.type == "cuda"
    if on_gpu:
        if world.local_rank >= torch.cuda.device_count():
            raise UserError(f"process {world.local_rank} of this machine has no GPU of its own (torch sees "
                            f"{torch.cuda.device_count()}); start at most that many (--nproc-per-node) or train "
                            f"on the CPU (--device cpu)")
        torch.cuda.set_device(world.local_rank)
    backend = "cpu:gloo,cuda:nccl" if on_gpu else "gloo"
    limit = datetime.timedelta(seconds=timeout)
    store, rank, size = next(dist.rendezvous("env://", timeout=limit))
    # torchrun's store outlives a restart (--max-restarts): the group's keys get the attempt's own prefix, or
    # a restarted process may read the address of a peer of the attempt before and fail to connect.
    store = dist.PrefixStore(f"rnnlab/attempt-{world.restarts}", store)
    dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=limit)
    atexit.register(dist.destroy_process_group)


def is_collective_failure(error: BaseException) -> bool:
    """A collective that failed because another process died or never came (gloo, NCCL, the store)."""
    return isinstance(error, dist.DistError) or (isinstance(error, RuntimeError) and any(
        marker in str(error) for marker in ("Connection closed by peer", "Connection reset by peer",
                                            "Timed out waiting", "connectFullMesh", "NCCL communicator")))


def seed_rank(seed: int, world: World, step: int) -> None:
    """Seed this process's own random numbers (dropout) from the run's seed, its rank and the step it starts
    at, once every process holds rank 0's weights: the processes draw different masks for their different
    rows, and a job of the same size started or resumed at the same step draws the same ones."""
    if world.size > 1:
        torch.manual_seed((seed * 1_000_003 + world.rank * 10_007 + step) % 2**63)


def collective_detail(error: BaseException) -> str:
    """The part of gloo's or NCCL's message that says what happened ("Connection reset by peer"), without
    its source location and advice."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", text)
    return text.split(". This is typically")[0].strip().rstrip(".")


def launch(nproc: int, argv: list) -> int:
    """``rnnlab train --nproc N``: torchrun's agent for this machine, running ``python -m rnnlab ARGV`` in
    ``nproc`` processes on a free loopback port; returns the job's exit status (the first failed process's:
    its own line has said why; on SIGTERM or Ctrl-C, ``128 + signal`` once the agent has passed the signal on
    and the processes have saved and said so)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if from_env().size > 1:
        raise UserError("--nproc starts a job of several processes; inside one (torchrun), leave it out")
    if not 1 <= nproc <= MAX_PROCESSES:
        raise UserError(f"--nproc must be between 1 and {MAX_PROCESSES}, got {nproc}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        run(parse_args(["--nproc-per-node", str(nproc), "--master-addr", "127.0.0.1", "--master-port", str(port),
                        "-m", "rnnlab", *argv]))
    except ChildFailedError as e:
        codes = [f.exitcode for f in e.failures.values()]
        return next((c for c in codes if c > 0), 1)
    except SignalException as e:  # the agent's own traceback would follow rank 0's line about what was saved
        return 128 + int(e.sigval)
    return 0
