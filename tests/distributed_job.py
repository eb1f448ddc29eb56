"""What tests/test_distributed.py runs under torchrun: ``python distributed_job.py ROOT ACTION...``, each
action ``TASK`` (train it into ROOT/two/TASK), ``poisoned`` (handwriting with a NaN at step 5, into
ROOT/two/poisoned), ``half:NAME`` (the first half of charlm's steps into
ROOT/NAME), ``resume:NAME:STEPS`` (resume the charlm run ROOT/NAME to STEPS steps),
``kill:STEP`` (a charlm run in ROOT/killed whose rank 1 dies at STEP in the job's first attempt) or
``stall:STEP`` (rank 1 stops answering at STEP). One interpreter and one launch for all of them: torch's
start-up is most of a tiny training."""

import logging
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from distributed_cases import COMMON, FAULTS, LM, LONG_STEPS, STEPS, poison_step, train  # noqa: E402

from rnnlab import cli  # noqa: E402
from rnnlab.tasks.lm import LMTask  # noqa: E402


def misbehave_at(step: int, what) -> None:
    """Make rank 1 call ``what`` when it asks for the batch of ``step``."""
    batch = LMTask.train_batch

    def train_batch(self, k):
        if k == step and os.environ["RANK"] == "1":
            what()
        return batch(self, k)

    LMTask.train_batch = train_batch


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def stall() -> None:
    """Stop answering, as a process stuck outside Python would, until torchrun's SIGTERM ends it."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(128 + signal.SIGTERM))
    time.sleep(600)


def main(root: str, actions: list) -> None:
    for action in actions:
        kind, _, rest = action.partition(":")
        if kind == "poisoned":  # handwriting with a NaN in one process's rows at step 5
            poison_step(5)
            train("handwriting", root, os.path.join(root, "two", "poisoned"))
        elif kind == "half":
            train("charlm", root, os.path.join(root, rest), max_steps=STEPS // 2)
        elif kind == "resume":
            name, steps = rest.split(":")
            train("charlm", root, os.path.join(root, name), resume=True, max_steps=int(steps))
        elif kind in ("kill", "stall"):  # through the command, which reports errors as one line
            if os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0":
                misbehave_at(int(rest), die if kind == "kill" else stall)
            sys.exit(cli.main(["train", "charlm", "--data", os.path.join(root, "text.txt"), "--out",
                               os.path.join(root, kind + "ed"), "--max-steps", str(LONG_STEPS), "--seed", "5",
                               "--set", *[f"{k}={v}" for k, v in {**COMMON, **LM, **FAULTS}.items()]]))
        else:
            train(kind, root, os.path.join(root, "two", kind))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO if os.environ["RANK"] == "0" else logging.WARNING, format="%(message)s",
                        force=True)
    main(sys.argv[1], sys.argv[2:])
