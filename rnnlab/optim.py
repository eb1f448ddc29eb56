"""Optimisers and learning-rate schedules, built from a ``TrainConfig``.

A schedule is a pure function of the step (plus, for ``plateau``, a multiplier that validation drives),
so resuming needs only the step and that multiplier.
"""

import math

import torch

from .config import TrainConfig


def build_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimiser, on torch's fused kernels where it has them: one call updates every parameter,
    where torch's default loops over them in Python (on the CPU, 2-3x the time of min-char-rnn's update).
    Adagrad's fused kernel is CPU-only, RMSprop has none: those take the multi-tensor (foreach) path."""
    c = config
    cpu = all(p.device.type == "cpu" for p in params)
    fast = {"fused": True}
    if c.optimizer == "sgd":
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, **fast)
    if c.optimizer == "adam":
        return torch.optim.Adam(params, lr=c.lr, eps=c.eps, weight_decay=c.weight_decay, **fast)
    if c.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=c.lr, eps=c.eps, weight_decay=c.weight_decay, **fast)
    if c.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=c.lr, alpha=c.alpha, eps=c.eps, momentum=c.momentum,
                                   centered=c.centered, weight_decay=c.weight_decay, foreach=True)
    if c.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=c.lr, eps=c.eps, weight_decay=c.weight_decay,
                                   **(fast if cpu else {"foreach": True}))
    raise AssertionError(f"config.validate() lets through optimizer {c.optimizer!r}")


class Schedule:
    """Learning rate at each step.

    - ``constant``: ``lr``.
    - ``step``: ``lr`` for ``decay_after`` epochs, then times ``lr_decay`` at each new epoch (Zaremba et al.:
      ``lr * lr_decay ** max(epoch + 1 - max_epoch, 0)`` with 0-based epochs).
    - ``cosine``: from ``lr`` down to ``min_lr`` over the whole run, half a cosine.
    - ``plateau``: ``lr``, times ``lr_decay`` whenever ``plateau_patience + 1`` evaluations in a row fail to
      improve the best validation loss.
    """

    def __init__(self, config: TrainConfig, steps_per_epoch: int, total_steps: int):
        self.config = config
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.plateau_factor = 1.0
        self.best = math.inf
        self.bad = 0

    def lr(self, step: int) -> float:
        c = self.config
        if c.lr_schedule == "step":
            epoch = step // self.steps_per_epoch
            return c.lr * c.lr_decay ** max(epoch + 1 - c.decay_after, 0)
        if c.lr_schedule == "cosine":
            progress = min(step / max(self.total_steps, 1), 1.0)
            return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * progress))
        if c.lr_schedule == "plateau":
            return c.lr * self.plateau_factor
        return c.lr

    def observe(self, valid_loss: float) -> None:
        """Feed a validation loss (used by ``plateau`` only)."""
        if valid_loss < self.best:
            self.best, self.bad = valid_loss, 0
            return
        self.bad += 1
        if self.config.lr_schedule == "plateau" and self.bad > self.config.plateau_patience:
            self.plateau_factor *= self.config.lr_decay
            self.bad = 0

    def state_dict(self) -> dict:
        return {"plateau_factor": self.plateau_factor, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_factor, self.best, self.bad = state["plateau_factor"], state["best"], state["bad"]
