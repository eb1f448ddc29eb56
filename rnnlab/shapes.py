"""Shape checks at public boundaries: every error names the expected shape, the received one, and a fix.

rnnlab has one layout, batch-first: a batch of sequences is ``(B, T, ...)``. The most common mistake
(``../shared/seeds/toy-sequence-classification.txt``) is passing time-major ``(T, B, ...)`` data, so
the checks look for that case and say so.
"""

import torch

from .errors import ShapeError


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def check_sequence(x: torch.Tensor, name: str, feature_size: int | None, batch_size: int | None = None) -> None:
    """Check a batch-first sequence: ``(B, T)`` of token ids when ``feature_size`` is None, else ``(B, T, feature_size)``.

    ``batch_size`` (from a carried state, when there is one) lets the check recognise time-major input.
    """
    want_rank = 2 if feature_size is None else 3
    expected = "(B, T)" if feature_size is None else f"(B, T, {feature_size})"
    if x.dim() != want_rank:
        hint = ""
        if feature_size is None and x.dim() == 3:
            hint = " It looks like features or one-hot vectors; this model takes integer token ids."
        elif feature_size is not None and x.dim() == 2:
            hint = " For a single feature add one with x.unsqueeze(-1); for token ids use an embedding model."
        raise ShapeError(
            f"{name} must have shape {expected}, batch first, but got {_fmt(x.shape)}.{hint}"
        )
    if feature_size is not None and x.size(-1) != feature_size:
        raise ShapeError(
            f"{name} must have shape {expected} (feature size {feature_size}), but got {_fmt(x.shape)}: "
            f"the last dimension is {x.size(-1)}. Check the model's input_size or the data's feature count."
        )
    if batch_size is not None and x.size(0) != batch_size:
        if x.size(1) == batch_size:
            raise ShapeError(
                f"{name} has shape {_fmt(x.shape)} but the state holds a batch of {batch_size}: the input looks "
                f"time-major (T, B, ...). rnnlab is batch-first {expected}; pass x.transpose(0, 1)."
            )
        raise ShapeError(
            f"{name} has batch size {x.size(0)} (shape {_fmt(x.shape)}) but the state was made for a batch of "
            f"{batch_size}. Pass state=None to start fresh, or keep the batch size fixed across calls."
        )
    if x.size(1) == 0:
        raise ShapeError(f"{name} has shape {_fmt(x.shape)}: a sequence needs at least one time step (T >= 1).")


def check_labels(inputs: torch.Tensor, labels: torch.Tensor, per_step: bool) -> None:
    """Labels must be ``(B, T)`` like the inputs' first two dimensions (per step) or ``(B,)`` (per sequence)."""
    batch, steps = inputs.shape[:2]
    expected = (batch, steps) if per_step else (batch,)
    if tuple(labels.shape) == expected:
        return
    what = f"labels must have shape {_fmt(expected)} ({'B, T' if per_step else 'B'}: one label per " \
           f"{'step' if per_step else 'sequence'}) for inputs of shape {_fmt(inputs.shape)}, but got {_fmt(labels.shape)}."
    if per_step and tuple(labels.shape) == (steps, batch):
        raise ShapeError(f"{what} The inputs look time-major (T, B, ...): rnnlab is batch-first; pass "
                         f"inputs.transpose(0, 1) (labels (B, T) are then right).")
    if per_step and labels.dim() == 2 and labels.size(0) == batch:
        raise ShapeError(f"{what} Each sequence needs exactly one label per step ({steps}); pad labels with -100 "
                         f"where a step has none.")
    raise ShapeError(f"{what} Check that labels and inputs describe the same batch.")
