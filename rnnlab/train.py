"""The training loop. It knows nothing about tasks: a task supplies batches, a loss and an evaluation.

A task object provides::

    task.steps_per_epoch                  optimiser steps in one pass over the training data
    task.train_batch(step) -> (batch, reset)
                                          the batch of global step ``step`` (a pure function of the step, so
                                          the step is the whole data position) and whether the carried
                                          recurrent state must start afresh (a new epoch)
    task.loss(model, batch, state) -> (loss, state, tokens)
                                          scalar loss to minimise, the state to carry, tokens it covered
    task.evaluate(model) -> dict          validation metrics, at least "loss"
    task.preview(model, step, run_dir) -> str | None
                                          optional: something to show at each evaluation (a sample)
    task.to(device)                       optional: move the training data to the device once

Truncated BPTT is the loop's business, not the task's: the state a batch ends with is detached (the
gradient stops there) and handed to the next batch, until ``reset`` says a new epoch begins. See
``data/text.py`` for why that state is the right context for the next batch.
"""

import json
import logging
import math
import os
import time

import torch
from tqdm.auto import tqdm

from . import checkpoint
from .config import TrainConfig
from .errors import TrainingDiverged, UserError
from .optim import Schedule, build_optimizer

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def detach(state):
    """Cut the graph behind a recurrent state (a tensor, a tuple of them, or None)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(detach(s) for s in state)


def to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _tensors(state):
    """The tensors of a recurrent state: a tensor, nested tuples of them, or None."""
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, (tuple, list)):
        for s in state:
            yield from _tensors(s)


def _all_finite(state, device) -> torch.Tensor:
    """A 0-dim bool tensor on ``device``, true when every number in ``state`` is finite; no host sync."""
    flag = torch.ones((), dtype=torch.bool, device=device)
    for t in _tensors(state):
        flag = flag & torch.isfinite(t).all()
    return flag


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def shuffled_batch(step: int, count: int, batch_size: int, seed: int, lengths: list | None = None,
                   bucket: int = 20) -> torch.Tensor:
    """Indices of the batch at global ``step`` when every epoch visits ``count`` items in a fresh order drawn
    from ``seed + epoch``: a pure function of the step, so resuming needs no data position beyond it.

    Given the items' ``lengths``, each run of ``bucket`` batches of that order is sorted by length before it is
    cut into batches, and the batches are then visited in a random order: padding shrinks (IAM-OnDB lines,
    628 points on average, pad to about 1,100 in a random batch of 32) while every item is still seen once
    per epoch.
    """
    steps_per_epoch = math.ceil(count / batch_size)
    epoch, k = divmod(step, steps_per_epoch)
    generator = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(count, generator=generator)
    if lengths is None:
        return order[k * batch_size : (k + 1) * batch_size]
    size = torch.as_tensor(lengths)
    group = batch_size * bucket
    order = torch.cat([chunk[size[chunk].argsort(stable=True)] for chunk in order.split(group)])
    batches = order.split(batch_size)
    return batches[int(torch.randperm(len(batches), generator=generator)[k])]


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl``."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, checkpoint.METRICS)

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def truncate(self, step: int) -> None:
        """Drop records after ``step``: on resume, the steps past the checkpoint are run again."""
        if not os.path.exists(self.path):
            return
        records, damaged = checkpoint.read_metrics_counting_damage(self.run_dir)
        if damaged:  # most often one line cut short by a killed process
            log.warning("%s: %d damaged line(s) dropped on resume", self.path, damaged)
        kept = [record for record in records if record["step"] <= step]
        checkpoint.write_text(self.path, "".join(json.dumps(record) + "\n" for record in kept))


def train_step(model, task, batch, carry, optimizer, params, config: TrainConfig):
    """One optimiser step on ``batch`` (already on the model's device), clipping as configured.

    Returns ``(loss, carry, tokens)``: the loss as a float, or None when the loss or the gradient norm was
    non-finite and the step was skipped (no update; the carried state is dropped too, since the state
    that led there is not worth keeping); ``carry`` detached for the next batch.
    """
    model.train()
    loss, new_carry, tokens = task.loss(model, batch, carry)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # The norm is measured before any clipping, so an inf gradient is seen, not clipped to a finite value.
    norm = torch.nn.utils.clip_grad_norm_(params, config.clip or math.inf)
    # One host sync per step, after the backward pass: the loss, the norm and the carried state are checked
    # together, so a GPU never waits half-way through a step for the CPU to look at a number.
    flags = torch.stack([torch.isfinite(loss) & torch.isfinite(norm), _all_finite(new_carry, loss.device)])
    step_ok, carry_ok = flags.tolist()
    if not step_ok:
        optimizer.zero_grad(set_to_none=True)
        return None, None, tokens
    if config.clip_value:
        torch.nn.utils.clip_grad_value_(params, config.clip_value)
    optimizer.step()
    return loss.item(), (detach(new_carry) if carry_ok else None), tokens


def _load_state(saved: dict, model, optimizer, schedule, device, run_dir: str) -> tuple:
    """Load a ``train_state.pt`` into the model, optimiser, schedule and RNG; return (step, carry, skipped,
    bad_evals). A state of another shape or optimiser (a ``--set`` that changed the model) is a UserError."""
    try:
        groups = saved["optimizer"]["param_groups"]
        missing = sorted(set(optimizer.defaults) - set(groups[0]))
        if missing:  # torch would load it and fail at the first step
            raise ValueError(f"saved by another optimiser: no {', '.join(missing)}")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        _set_rng_state(saved["rng"])
        return saved["step"], to_device(saved["carry"], device), saved["skipped"], saved["bad_evals"]
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        reason = f"no entry {e}" if isinstance(e, KeyError) else checkpoint.first_detail(e)
        raise UserError(f"{run_dir}/{checkpoint.TRAIN_STATE} does not fit this run's model and optimiser ({reason}); "
                        f"resume without --set keys that change them, or start again with --force") from None


def train(model: torch.nn.Module, task, config: TrainConfig, run_dir: str, resume: bool = False,
          saved: dict | None = None, start=None) -> dict:
    """Train ``model`` on ``task`` into ``run_dir``; return a summary (steps, losses, skipped steps, time).

    ``resume`` continues from ``run_dir``'s training state, or from ``saved`` when the caller has read it already.
    ``start()``, if given, is called once the saved state has loaded and before anything is written to
    ``run_dir``: a state that does not fit the model or the optimiser fails with the folder untouched.
    """
    device = resolve_device(config.device)
    model.to(device)
    if hasattr(task, "to"):
        task.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, config)
    total = config.max_steps or config.epochs * task.steps_per_epoch
    schedule = Schedule(config, task.steps_per_epoch, total)
    eval_interval = config.eval_interval or task.steps_per_epoch
    metrics = MetricsLog(run_dir)

    step, carry, skipped, consecutive, bad_evals = 0, None, 0, 0, 0
    if resume:
        saved = saved or checkpoint.load_train_state(run_dir)
        step, carry, skipped, bad_evals = _load_state(saved, model, optimizer, schedule, device, run_dir)
        if step > total:
            raise UserError(f"{run_dir} is already at step {step}, past the {total} steps asked for; give a larger "
                            f"--max-steps")
    if start is not None:
        start()
    if resume:
        metrics.truncate(step)
        log.info("resumed from step %d of %d", step, total)

    def save_state():
        checkpoint.save_train_state(run_dir, {
            "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(), "rng": _rng_state(), "carry": to_device(carry, "cpu"),
            "skipped": skipped, "bad_evals": bad_evals,
        })

    bar = tqdm(total=total, initial=step, disable=None, unit="step", dynamic_ncols=True)
    window_loss, window_steps, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()
    last_valid, stopped_early, began = None, False, time.perf_counter()
    try:
        while step < total:
            batch, reset = task.train_batch(step)
            if reset:
                carry = None
            lr = schedule.lr(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, carry, tokens = train_step(model, task, to_device(batch, device), carry, optimizer, params, config)
            if loss is not None:
                consecutive = 0
                window_loss += loss
                window_steps += 1
            else:
                skipped += 1
                consecutive += 1
                log.warning("step %d: non-finite loss or gradient, step skipped (%d in a row)", step, consecutive)
                if consecutive >= config.max_skips:
                    kept = (f"the last good checkpoint in {run_dir} is kept. Lower lr or clip, then --resume or retrain"
                            if os.path.exists(os.path.join(run_dir, checkpoint.TRAIN_STATE)) else
                            "no checkpoint had been written yet. Lower lr or clip and retrain")
                    raise TrainingDiverged(
                        f"{consecutive} consecutive steps had a non-finite loss or gradient (step {step}); {kept}."
                    )
            window_tokens += tokens
            step += 1
            bar.update(1)

            if step % config.log_interval == 0 or step == total:
                elapsed = time.perf_counter() - window_start
                record = {"step": step, "epoch": round(step / task.steps_per_epoch, 4), "split": "train",
                          "loss": window_loss / window_steps if window_steps else None,  # None: every step skipped
                          "lr": lr,
                          "tokens_per_s": window_tokens / max(elapsed, 1e-9), "skipped": skipped}
                metrics.write(record)
                bar.set_postfix(loss="skipped" if record["loss"] is None else f"{record['loss']:.3f}",
                                tok_s=f"{record['tokens_per_s']:,.0f}")
                window_loss, window_steps, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()

            if step % eval_interval == 0 or step == total:
                eval_start = time.perf_counter()
                result = task.evaluate(model)
                last_valid = result["loss"]
                improved = last_valid < schedule.best
                schedule.observe(last_valid)
                bad_evals = 0 if improved else bad_evals + 1
                metrics.write({"step": step, "epoch": round(step / task.steps_per_epoch, 4), "split": "valid",
                               **result, "best": improved})
                if improved:
                    checkpoint.save_weights(run_dir, model, step, {"valid_loss": last_valid})
                elif not checkpoint.state_is_finite(model):
                    checkpoint.save_weights(run_dir, model, step)  # raises: non-finite weights are never saved
                save_state()
                shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
                                  if isinstance(v, (int, float)))  # tables (a confusion matrix) stay in metrics.jsonl
                log.info("step %d/%d  valid: %s%s", step, total, shown, "  (best, saved)" if improved else "")
                preview = getattr(task, "preview", None)
                if preview is not None:
                    text = preview(model, step=step, run_dir=run_dir)
                    if text:
                        log.info("sample at step %d:\n%s", step, text)
                window_start += time.perf_counter() - eval_start  # tokens/s counts training time only
                if config.patience and bad_evals >= config.patience:
                    log.info("early stopping: %d evaluations without improvement", bad_evals)
                    stopped_early = True
                    break
    finally:
        bar.close()
    return {"steps": step, "total_steps": total, "best_valid_loss": schedule.best, "last_valid_loss": last_valid,
            "skipped_steps": skipped, "stopped_early": stopped_early, "seconds": time.perf_counter() - began}
