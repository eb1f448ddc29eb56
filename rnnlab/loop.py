"""The training loop. It knows nothing about tasks: a task (the protocol of ``tasks/base.py``) supplies
batches, a loss, an evaluation and a preview; the run folder (``folder.py``) takes the checkpoints and the
metrics.

Checkpoints: the best weights at each evaluation that improves; the resumable training state at every
evaluation, every ``save_interval`` steps, and when Ctrl-C or SIGTERM asks the loop to stop (it finishes
the step it is in, saves, and raises ``TrainingInterrupted``; a second Ctrl-C stops at once).

Truncated BPTT is the loop's business, not the task's: the state a batch ends with is detached (the
gradient stops there) and handed to the next batch, until ``reset`` says a new epoch begins. See
``data/text.py`` for why that state is the right context for the next batch.
"""

from contextlib import contextmanager, nullcontext
from functools import partial
import logging
import math
import signal
import threading
import time
from typing import NamedTuple

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .checkpoint import first_detail, state_is_finite
from .config import TrainConfig
from .distributed import (SINGLE, World, collective_detail, device_of, is_collective_failure, job_id,
                          seed_rank)
from .errors import TrainingDiverged, TrainingInterrupted, UserError
from .optim import Schedule, build_optimizer
from .precision import autocast, check_precision
from .threads import threads

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def detach(state):
    """Cut the graph behind a recurrent state (a tensor, a tuple of them, or None), in fp32: a state that
    came out of a bf16 kernel is carried, and saved, at full precision like everything else."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach().float() if state.dtype == torch.bfloat16 else state.detach()
    return tuple(detach(s) for s in state)


def to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _rows(batch) -> int:
    """The rows of a batch: the first dimension of its first tensor."""
    return next(_tensors(batch if isinstance(batch, (tuple, list)) else list(batch.values())
                         if isinstance(batch, dict) else batch)).size(0)


def _tensors(state):
    """The tensors of a recurrent state: a tensor, nested tuples of them, or None."""
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, (tuple, list)):
        for s in state:
            yield from _tensors(s)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


STATE_KEYS = ("step", "model", "optimizer", "schedule", "rng", "carry", "skipped", "bad_evals")  # train_state.pt


def check_state(saved: dict, name: str) -> None:
    """A training state holding every entry the loop saves (its fit to the model is checked on loading)."""
    missing = [key for key in STATE_KEYS if key not in saved]
    if missing:
        raise UserError(f"the training state of {name} does not fit this run's model and optimiser (no entry "
                        f"{missing[0]!r}); resume without --set keys that change them, or start again with --force")


class Step(NamedTuple):
    """What :func:`train_step` did: the loss (a float; None when the step was skipped), the state to carry,
    the tokens the step covered (in every process of the job), and whether any process was asked to stop."""

    loss: float | None
    carry: object
    tokens: int
    stop: bool


def train_step(model, task, batch, carry, optimizer, params, config: TrainConfig, world: World = SINGLE,
               stopping: bool = False, share: float = 1.0, loss_fn=None) -> Step:
    """One optimiser step on ``batch`` (already on the model's device), clipping as configured.

    ``loss`` is None when the loss or the gradient norm was non-finite and the step was skipped (no update;
    the carried state is dropped too, since the state that led there is not worth keeping); ``carry`` is
    detached for the next batch. In a job of several processes (``world``: distributed.py) ``batch`` is this
    process's block of rows, ``share`` its fraction of the batch's rows, the loss and the tokens are the
    whole job's, every process skips together and ``stop`` says whether any of them was ``stopping``.
    ``loss_fn`` stands in for ``task.loss`` (the ``compile`` key's compiled one: :func:`compiled_step`).
    """
    if not getattr(model, "module", model).training:  # an evaluation or a preview (of the model inside DDP's
        model.train()                                    # wrapper) left it in eval mode; train() walks every module
    with autocast(config.precision, next(model.parameters()).device):
        loss, new_carry, tokens = (loss_fn or task.loss)(model, batch, carry)
    loss = loss.float()
    if world.size > 1:
        # This process's part of the batch's loss: its share of the rows (or of the tokens, when the loss is a
        # mean over them), so that the sum over the processes (_Parallel adds the gradients) is the batch's
        # loss, and every gradient inside the graph, clamped ones included, is the size one process sees.
        if task.loss_is_token_mean:
            share = tokens / world.sum(loss.new_tensor([float(tokens)]))[0]
        loss = loss * share
    _clear_grads(params)
    loss.backward()
    # The norm is measured before any clipping, so an inf gradient is seen, not clipped to a finite value.
    grads = [p.grad for p in params if p.grad is not None]
    norm = _total_norm(grads)
    if config.clip:  # torch's clip_grad_norm_, without its grouping by device and dtype (one of each here)
        torch._foreach_mul_(grads, torch.clamp(config.clip / (norm + 1e-6), max=1.0))
    # One host sync per step, after the backward pass: the loss, the norm, the tokens, the stop request and the
    # sum of each carried tensor come back together (summed over the processes of a job, in one all-reduce), so
    # a GPU never waits half-way through a step for the CPU to look at a number. A NaN or inf anywhere in a
    # tensor makes its sum non-finite (so would a sum past 3e38 of finite numbers: such a state is dropped
    # too, as it should be).
    sums = [t.detach().sum(dtype=torch.float32) for t in _tensors(new_carry)]
    if world.size > 1:  # the tokens and the stop requests are the job's: summed with the rest
        job = [loss.new_tensor(float(tokens)), loss.new_tensor(float(stopping))]
        values = world.sum(torch.stack([loss.detach(), norm.float(), *sums, *job])).tolist()
        carried, tokens, stop = values[2:-2], int(values[-2]), values[-1] > 0
    else:
        values = torch.stack([loss.detach(), norm.float(), *sums]).tolist()
        carried, stop = values[2:], stopping
    loss_value, norm_value = values[0], values[1] / world.size  # the parts' sum; every process has the same norm
    step_ok, carry_ok = math.isfinite(loss_value + norm_value), all(map(math.isfinite, carried))
    if not step_ok:
        _clear_grads(params)
        return Step(None, None, tokens, stop)
    if config.clip_value:
        torch._foreach_clamp_min_(grads, -config.clip_value)
        torch._foreach_clamp_max_(grads, config.clip_value)
    optimizer.step()
    return Step(loss_value, detach(new_carry) if carry_ok else None, tokens, stop)


def _total_norm(grads: list) -> torch.Tensor:
    """The 2-norm of all of ``grads`` together (torch's ``get_total_norm`` for tensors of one device and dtype,
    as a model's are: its grouping cost 10 % of a min-char-rnn step, benchmarks/results.md)."""
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def _clear_grads(params: list) -> None:
    """``optimizer.zero_grad(set_to_none=True)`` for the optimiser's own ``params``, without its wrapper: at a
    1 ms step (min-char-rnn) the wrapper's profiling hook and grouping cost 60 us (benchmarks/results.md)."""
    for p in params:
        p.grad = None


# Inductor's options for a CPU step (benchmarks/results.md, min-char-rnn): a matmul of one row (batch 1)
# becomes a generated multiply-and-sum, fused with its neighbours, instead of an MKL call of a few us; and
# the generated code is called from a C++ wrapper instead of Python, one call a graph instead of one a kernel.
CPU_COMPILE_OPTIONS = {"post_grad_fusion_options": {"decompose_mm_pass": {}}, "cpp_wrapper": True}


def compiled_step(task, device):
    """:func:`train_step` with ``task.loss`` compiled by ``torch.compile``: the ``compile`` key. The forward
    pass and the loss become generated kernels, and AOTAutograd compiles their backward too; the checks, the
    clipping and the optimiser (torch's fused kernels already) stay as they are, outside the graph. The first
    calls compile (tens of seconds on a small CPU), as does the first of a new batch shape. It pays where a
    step is many small operations (min-char-rnn: benchmarks/min_char_rnn.py), not where it is a few large
    matmuls. On the CPU Inductor gets :data:`CPU_COMPILE_OPTIONS`."""
    torch._dynamo.config.allow_rnn = True  # to read nn.RNN's weights: recurrent.py steps them itself when compiling
    options = CPU_COMPILE_OPTIONS if torch.device(device).type == "cpu" else None
    return partial(train_step, loss_fn=torch.compile(task.loss, options=options))


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
        reason = f"no entry {e}" if isinstance(e, KeyError) else first_detail(e)
        raise UserError(f"the training state of {run_dir} does not fit this run's model and optimiser ({reason}); "
                        f"resume without --set keys that change them, or start again with --force") from None


@contextmanager
def stop_requests():
    """While training, SIGINT (Ctrl-C) and SIGTERM ask the loop to stop after the current step: the list this
    yields receives their numbers. A second Ctrl-C raises KeyboardInterrupt at once. Outside the main thread
    (where Python cannot take signals) the list stays empty and the defaults stand."""
    requested = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def ask(signum, frame):
        if requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested.append(signum)

    previous = {s: signal.signal(s, ask) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def train(model: torch.nn.Module, task, config: TrainConfig, folder, resume: bool = False,
          saved: dict | None = None, world: World = SINGLE) -> dict:
    """Train ``model`` on ``task`` into the run folder ``folder`` (a ``folder.RunFolder`` held for training);
    return a summary (steps, losses, skipped steps, time).

    ``resume`` continues from the folder's training state, or from ``saved`` when the caller has read it
    already. The run's files are written once that state has loaded: a state that does not fit the model or
    the optimiser fails with the folder untouched. In a job of several processes (``world``, whose process
    group is up: distributed.py) the model trains under DistributedDataParallel on each process's block of
    every batch, and only rank 0 writes to ``folder``.
    """
    device = device_of(resolve_device(config.device), world)
    check_precision(config.precision, device)
    if config.compile and task.compile_refused:
        raise UserError(f"compile=true does not suit the {task.name} task: {task.compile_refused}; train without it "
                        f"(--set compile=false)")
    model.to(device)
    task.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    trained = _Parallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world.size > 1 else model
    optimizer = build_optimizer(params, config)
    total = config.max_steps or config.epochs * task.steps_per_epoch
    schedule = Schedule(config, task.steps_per_epoch, total)
    eval_interval = config.eval_interval or task.steps_per_epoch

    step, carry, skipped, consecutive, bad_evals = 0, None, 0, 0, 0
    if resume:
        saved = saved or folder.load_train_state()
        step, carry, skipped, bad_evals = _load_state(saved, model, optimizer, schedule, device, folder.name)
        carry = world.rows(carry, dim=1)  # the saved state is the whole batch's: this process's rows of it
        if step > total:
            raise UserError(f"{folder.name} is already at step {step}, past the {total} steps asked for; give a "
                            f"larger --max-steps")
        if world.writer:  # before begin(): an unreadable metrics.jsonl fails before config.json is rewritten
            folder.truncate_metrics(step)
        log.info("resumed from step %d of %d", step, total)
    if world.writer:
        folder.begin(task.name, config, task.vocab, resume)

    def save_state():
        whole = to_device(world.gather_rows(carry), "cpu")  # every process takes part; rank 0 writes
        if world.writer:
            folder.save_train_state({
                "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "rng": _rng_state(), "carry": whole,
                "skipped": skipped, "bad_evals": bad_evals, "job": job_id() if world.size > 1 else None,
            })

    # A --force run writes beside the old one until its first checkpoint (rank 0's folder knows): every process
    # must agree, since the saves at a stop are collective.
    replacing = bool(world.sum(torch.tensor([float(folder.replacing)]))[0]) if world.size > 1 else folder.replacing
    seed_rank(config.seed, world, step)
    step_fn = compiled_step(task, device) if config.compile else train_step
    bar = tqdm(total=total, initial=step, disable=None if world.writer else True, unit="step", dynamic_ncols=True)
    window_loss, window_steps, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()
    last_valid, stopped_early, began, saved_at = None, False, time.perf_counter(), step if resume else None
    try:
        with stop_requests() as stop, threads(config.threads) if config.threads else nullcontext():
            while step < total:
                batch, reset = task.train_batch(step)
                if reset:
                    carry = None
                lr = schedule.lr(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                rows = _rows(batch)
                if world.size > 1 and not len(world.part(rows)):
                    raise UserError(f"a batch of step {step} has {rows} rows, fewer than the {world.size} processes "
                                    f"(the short last batch of an epoch); choose a batch_size that leaves a "
                                    f"remainder of 0 or at least {world.size} rows")
                loss, carry, tokens, stopping = step_fn(trained, task, to_device(world.rows(batch), device), carry,
                                                        optimizer, params, config, world, bool(stop),
                                                        len(world.part(rows)) / rows)
                if stopping and not stop:
                    stop.append(signal.SIGTERM)  # another process of the job was asked to stop
                if loss is not None:
                    consecutive = 0
                    window_loss += loss
                    window_steps += 1
                else:
                    skipped += 1
                    consecutive += 1
                    log.warning("step %d: non-finite loss or gradient, step skipped (%d in a row)", step, consecutive)
                    if consecutive >= config.max_skips:
                        kept = (f"the last good checkpoint in {folder.name} is kept. Lower lr or clip, then --resume "
                                f"or retrain" if saved_at is not None else
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
                              "loss": window_loss / window_steps if window_steps else None,  # None: all skipped
                              "lr": lr, "tokens_per_s": window_tokens / max(elapsed, 1e-9), "skipped": skipped,
                              "world_size": world.size}
                    if world.writer:
                        folder.append_metrics(record)
                    bar.set_postfix(loss="skipped" if record["loss"] is None else f"{record['loss']:.3f}",
                                    tok_s=f"{record['tokens_per_s']:,.0f}")
                    window_loss, window_steps, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()

                if step % eval_interval == 0 or step == total:
                    eval_start = time.perf_counter()
                    result = task.evaluate(model, world)
                    last_valid = result["loss"]
                    improved = last_valid < schedule.best
                    schedule.observe(last_valid)
                    bad_evals = 0 if improved else bad_evals + 1
                    if world.writer:
                        folder.append_metrics({"step": step, "epoch": round(step / task.steps_per_epoch, 4),
                                               "split": "valid", **result, "best": improved})
                    if improved:
                        if world.writer:
                            folder.save_weights(model, step, {"valid_loss": last_valid})
                    elif not state_is_finite(model):
                        folder.save_weights(model, step)  # raises: non-finite weights are never saved
                    save_state()
                    saved_at = step
                    shown = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in result.items()
                                      if isinstance(v, (int, float)))  # tables (a confusion matrix) stay in the log
                    log.info("step %d/%d  valid: %s%s", step, total, shown, "  (best, saved)" if improved else "")
                    text = task.preview(model, step, folder) if world.writer else ""
                    if text:
                        log.info("sample at step %d:\n%s", step, text)
                    window_start += time.perf_counter() - eval_start  # tokens/s counts training time only
                    if config.patience and bad_evals >= config.patience:
                        log.info("early stopping: %d evaluations without improvement", bad_evals)
                        stopped_early = True
                        break
                elif config.save_interval and step % config.save_interval == 0:
                    save_state()
                    saved_at = step

                # A job stops where its processes agreed (the step's all-reduce); one process, as soon as asked.
                if stopping or (stop and world.size == 1):
                    if not (replacing and saved_at is None) and saved_at != step:
                        save_state()  # the step just finished: --resume continues exactly here
                        saved_at = step
                    raise TrainingInterrupted(step, saved_at is not None, stop[0])
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt:  # a second Ctrl-C, in the middle of a step: the last save stands
        raise TrainingInterrupted(None, saved_at is not None, signal.SIGINT) from None
    except RuntimeError as e:
        if world.size == 1 or not is_collective_failure(e):
            raise
        kept = f"the last checkpoint in {folder.name} (step {saved_at}) is intact: continue with --resume" \
            if saved_at is not None else "no checkpoint had been written yet"
        raise UserError(f"another process of the job failed or stopped answering near step {step} "
                        f"({collective_detail(e)}); {kept}") from None
    finally:
        bar.close()
    return {"steps": step, "total_steps": total, "best_valid_loss": schedule.best, "last_valid_loss": last_valid,
            "skipped_steps": skipped, "stopped_early": stopped_early, "seconds": time.perf_counter() - began,
            "world_size": world.size}


class _Parallel(torch.nn.parallel.DistributedDataParallel):
    """DDP that adds the processes' gradients (each process's loss is its part of the batch's: train_step)
    instead of averaging them, and answers for the model's own methods and attributes (``model.start`` of
    the synthesis network): a task calls its model the same way in one process or several."""

    def __init__(self, module, **kwargs):
        super().__init__(module, **kwargs)
        self.register_comm_hook(None, _sum_gradients)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def _sum_gradients(state, bucket):
    """DDP's communication hook: one all-reduce per bucket of gradients, summed, not divided."""
    return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda done: done.value()[0])
