"""Generations off the event loop: at most ``workers`` at a time, ``waiting`` more in line, each with a time
limit, each stopped when its client goes away.

A generation is a Python iterator (``Run.write_stream``, ``Run.stream``) that a worker thread runs from start
to end, so torch's per-thread settings (threads, inference mode) hold throughout; the pieces cross to the
event loop through an ``asyncio.Queue``::

    request --start()--> Job --executor (workers threads)--> for piece in make(): put(piece)
       ^                  |                                        |  stops when cancelled or past the deadline
       +--- await next() -+ <------ loop.call_soon_threadsafe -----+

The queue of pieces has no bound of its own: a generation's length is bounded by the request limits.
"""

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
import logging
import math
import threading
import time

from ..errors import UserError
from .fields import BadRequest

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # while a request waits for its first piece: how often to ask whether its client left


class Busy(Exception):
    """Every worker is busy and the line is full: answer 429 with ``Retry-After``."""


class TimeLimit(Exception):
    """A generation ran past its time limit (the server's ``time_limit``)."""


class ClientGone(Exception):
    """The client disconnected before the generation gave its first piece."""


_PIECE, _END, _ERROR = "piece", "end", "error"


class Jobs:
    """The server's generations (module docstring). Use from the event loop's thread only."""

    def __init__(self, workers: int, waiting: int, time_limit: float):
        self.workers, self.waiting, self.time_limit = workers, waiting, time_limit
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="rnnlab-generation")
        self.pending = 0  # running and waiting
        self.live: set = set()  # their jobs, for close()

    def start(self, make: Callable[[], Iterator]) -> "Job":
        """Queue ``make`` (called in the worker: it may raise UserError) as a new job; ``Busy`` when full."""
        if self.pending >= self.workers + self.waiting:
            raise Busy(f"the server is busy: {self.workers} generations are running and {self.waiting} waiting; "
                       f"try again in a moment")
        loop = asyncio.get_running_loop()
        job = Job(make, loop, self.time_limit)
        self.pending += 1
        self.live.add(job)
        future = self.executor.submit(job.run)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._finished, job))
        return job

    def load(self) -> dict:
        """How busy the server is: ``pending`` generations (running and waiting) against its limits."""
        return {"workers": self.workers, "waiting": self.waiting, "pending": self.pending}

    def _finished(self, job: "Job") -> None:
        self.pending -= 1
        self.live.discard(job)

    def close(self) -> None:
        """Cancel every job and wait for their threads (each stops at its next piece)."""
        for job in list(self.live):
            job.cancel()
        self.executor.shutdown(wait=True, cancel_futures=True)


class Job:
    """One generation: its pieces arrive through :meth:`next`; :meth:`cancel` stops it at the next piece."""

    def __init__(self, make: Callable[[], Iterator], loop, time_limit: float):
        self.make, self.loop, self.time_limit = make, loop, time_limit
        self.deadline = math.inf  # set when a worker starts it: the time limit counts the generation, not the line
        self.pieces: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()

    # -- in the worker thread

    def run(self) -> None:
        """Run the generation to its end, its error, its deadline or its cancelling; the last message put is
        always an end or an error, so a reader never waits for nothing."""
        pieces, last = None, (_END, None)
        self.deadline = time.monotonic() + self.time_limit
        try:
            if not self.cancelled.is_set():
                pieces = self.make()
                for piece in pieces:
                    self._check_deadline()
                    if self.cancelled.is_set():
                        break
                    self._put(_PIECE, piece)
        except (UserError, TimeLimit, BadRequest) as e:  # the client's to know: a 4xx (or 503)
            last = (_ERROR, e)
        except Exception as e:  # a bug: logged with its traceback here; the client gets a 500 without one
            log.exception("a generation failed")
            last = (_ERROR, e)
        finally:
            if hasattr(pieces, "close"):
                pieces.close()  # a generator's cleanup (its thread settings) in the thread that ran it
            self._put(*last)

    def _check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise TimeLimit(f"the generation ran past the server's time limit of {self.time_limit:g} s; ask for "
                            f"less (a shorter text or length)")

    def _put(self, kind: str, value) -> None:
        self.loop.call_soon_threadsafe(self.pieces.put_nowait, (kind, value))

    # -- on the event loop

    async def first(self, disconnected: Callable) -> tuple[bool, object]:
        """The first piece as ``(True, piece)``, or ``(False, None)`` when the generation gave none; raises
        its error, or ``ClientGone`` (and cancels) if ``await disconnected()`` says the client left first."""
        while True:
            try:
                kind, value = await asyncio.wait_for(self.pieces.get(), POLL_SECONDS)
                break
            except asyncio.TimeoutError:  # TimeoutError itself only from Python 3.11
                if await disconnected():
                    self.cancel()
                    raise ClientGone() from None
        return self._unpack(kind, value)

    async def next_batch(self) -> tuple[list, bool]:
        """The pieces that have arrived (waiting for one at least) and whether the generation is over;
        raises its error."""
        batch, over = [], False
        kind, value = await self.pieces.get()
        while True:
            more, piece = self._unpack(kind, value)
            if not more:
                over = True
                break
            batch.append(piece)
            if self.pieces.empty():
                break
            kind, value = self.pieces.get_nowait()
        return batch, over

    @staticmethod
    def _unpack(kind: str, value) -> tuple[bool, object]:
        if kind == _ERROR:
            raise value
        return kind == _PIECE, value
