"""Weights and training state, to and from files: safetensors for weights (no pickle, the same bytes for the
same weights), ``torch.save`` / ``torch.load(weights_only=True)`` for the resumable training state.

This module knows files, not run folders: ``folder.py`` decides where they live, and nothing here knows
a task. Every write is atomic (``files.atomic_write``).
"""

import json
import warnings

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
import torch

from .errors import CheckpointError, TrainingDiverged
from .files import JSONError, atomic_write, parse_json, write_bytes

HEADER_LIMIT = 100_000_000  # bytes: safetensors' own cap on a header


def state_is_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.state_dict().values() if p.is_floating_point())


def save_weights(path: str, model: torch.nn.Module, step: int, metadata: dict | None = None) -> None:
    """Save the model's weights (on CPU) to ``path``; non-finite weights are refused."""
    if not state_is_finite(model):
        raise TrainingDiverged(
            f"the weights became non-finite at step {step}; they were not saved and the previous checkpoint "
            f"is kept. Lower lr, or set clip (global norm) to a smaller value, and resume or retrain."
        )
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    meta = {"step": str(step), **{k: str(v) for k, v in (metadata or {}).items()}}
    write_safetensors(path, tensors, meta)


def write_safetensors(path: str, tensors: dict, metadata: dict) -> None:
    """``tensors`` and string ``metadata`` to ``path`` as safetensors, atomically, the same bytes every time.

    safetensors 0.8 writes ``__metadata__`` in a random order (safetensors/safetensors#584), so the same
    weights would hash differently on each save; the header is rewritten here with the keys sorted (same
    length, same tensor entries, so the data offsets stand)."""
    data = save(tensors, metadata=metadata)
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    canonical = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(canonical) <= size, "reordering keys cannot lengthen the header"
    write_bytes(path, data[:8] + canonical.ljust(size) + data[8 + size :])  # the format pads with spaces


def read_weights(path: str) -> tuple[dict, dict]:
    """The tensors of the safetensors file ``path`` (on CPU) and its string metadata."""
    try:
        state = load_file(path, device="cpu")
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is corrupted or truncated ({e}); retrain or restore the run") from None
    return state, metadata


def weight_shapes(path: str) -> dict:
    """``{name: shape}`` of every tensor in the safetensors file ``path``, from its header: nothing is allocated."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 2 <= size <= HEADER_LIMIT:
                raise ValueError(f"a header of {size:,} bytes")
            header = parse_json(f.read(size).decode("utf-8"), path)
        return {name: tuple(entry["shape"]) for name, entry in header.items() if name != "__metadata__"}
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError, JSONError) as e:
        raise CheckpointError(f"{path} is corrupted or truncated ({getattr(e, 'reason', e)}); retrain or restore "
                              f"the run") from None


def shape_mismatch(expected: dict, saved: dict) -> str | None:
    """How the ``{name: shape}`` a model expects differs from a file's, in a few words; None when they agree."""
    missing, unexpected = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
    if missing:
        return f"the weights lack {len(missing)} tensor(s) the config needs, first {missing[0]}"
    if unexpected:
        return f"the weights hold {len(unexpected)} tensor(s) the config has no place for, first {unexpected[0]}"
    for name in expected:
        if tuple(expected[name]) != tuple(saved[name]):
            return f"{name} is {list(saved[name])} in the weights but {list(expected[name])} by the config"
    return None


def save_train_state(path: str, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_train_state(path: str) -> dict:
    """A training state saved by :func:`save_train_state`, loaded without running any code from the file."""
    try:
        with warnings.catch_warnings():  # torch warns about a pickle it refuses: the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 -- arbitrary bytes make torch.load raise almost anything
        # torch's own message would suggest weights_only=False, which runs the file's code: not for a damaged file.
        raise CheckpointError(f"{path} is corrupted or truncated ({type(e).__name__}); restart with --force") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not an rnnlab training state; restart with --force")
    return state


def first_detail(error: Exception) -> str:
    """One line of ``error``: torch's load_state_dict errors open with a heading ending in ":", so the first
    line that does not."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.strip().endswith(":")]
    return lines[0] if lines else type(error).__name__


def load_into(model: torch.nn.Module, state: dict, path: str, against: str) -> None:
    """Copy ``state`` (read from ``path``) into ``model``'s parameters (fp16 weights load into float32 too);
    a mismatch or a non-finite weight is a CheckpointError naming ``against``, what the model was built from."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not match {against} ({first_detail(e)})") from None
    if not state_is_finite(model):  # training never writes these: the file was damaged afterwards
        raise CheckpointError(f"{path} holds NaN or infinite weights; it is damaged: retrain or restore the run")
