"""A checkpoint is a folder (a "run")::

    RUN/
      config.json        task name + every config field: enough to rebuild the model
      vocab.json         the vocabulary (tokens in id order)
      model.safetensors  weights with the best validation loss: all that sampling and evaluation load (no pickle)
      train_state.pt     the last step, for --resume only: weights, optimiser, schedule, RNG states, step,
                         carried recurrent state; loaded with torch.load(weights_only=True)
      metrics.jsonl      one JSON object per log step and per evaluation

Every file is written to a temporary name in the same folder and moved into place with ``os.replace``,
which is atomic: a process killed at any moment leaves the previous version of each file loadable.
``train_state.pt`` is self-contained so that resuming never mixes files from two different steps.
"""

from dataclasses import asdict, dataclass
import json
import os

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
import torch

from . import __version__
from .data.text import Vocab
from .errors import CheckpointError, TrainingDiverged, UserError

CONFIG = "config.json"
VOCAB = "vocab.json"
WEIGHTS = "model.safetensors"
TRAIN_STATE = "train_state.pt"
METRICS = "metrics.jsonl"


def atomic_write(path: str, write) -> None:
    """Call ``write(tmp_path)``, flush it to disk, then rename over ``path``."""
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # some writers create private files; a run folder is shared like any output
        os.replace(tmp, path)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None  # the user's path, not the temporary name
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


def save_run_files(run_dir: str, task: str, config, vocab: Vocab) -> None:
    """Write ``config.json`` and ``vocab.json`` (creating the folder)."""
    os.makedirs(run_dir, exist_ok=True)
    payload = {"task": task, "rnnlab_version": __version__, "config": asdict(config)}
    write_text(os.path.join(run_dir, CONFIG), json.dumps(payload, indent=2) + "\n")
    write_text(os.path.join(run_dir, VOCAB), vocab.to_json() + "\n")


def state_is_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.state_dict().values() if p.is_floating_point())


def save_weights(run_dir: str, model: torch.nn.Module, step: int, metadata: dict | None = None) -> None:
    """Save the model's weights (on CPU) as ``model.safetensors``; non-finite weights are refused."""
    if not state_is_finite(model):
        raise TrainingDiverged(
            f"the weights became non-finite at step {step}; they were not saved and the previous checkpoint "
            f"is kept. Lower lr, or set clip (global norm) to a smaller value, and resume or retrain."
        )
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    meta = {"step": str(step), **{k: str(v) for k, v in (metadata or {}).items()}}
    write_safetensors(os.path.join(run_dir, WEIGHTS), tensors, meta)


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
    canonical = canonical.ljust(size)  # the format pads the header with spaces

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data[:8] + canonical + data[8 + size :])

    atomic_write(path, write)


def save_train_state(run_dir: str, state: dict) -> None:
    atomic_write(os.path.join(run_dir, TRAIN_STATE), lambda tmp: torch.save(state, tmp))


def load_train_state(run_dir: str) -> dict:
    path = os.path.join(run_dir, TRAIN_STATE)
    if not os.path.exists(path):
        raise CheckpointError(f"{run_dir} has no {TRAIN_STATE} to resume from; train without --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- arbitrary bytes make torch.load raise almost anything
        # torch's own message would suggest weights_only=False, which runs the file's code: not for a damaged file.
        raise CheckpointError(f"{path} is corrupted or truncated ({type(e).__name__}); restart with --force") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not an rnnlab training state; restart with --force")
    return state


def read_metrics(run_dir: str) -> list[dict]:
    """The records of ``metrics.jsonl`` that parse and carry a step; damaged lines are skipped."""
    return read_metrics_counting_damage(run_dir)[0]


def read_metrics_counting_damage(run_dir: str) -> tuple[list[dict], int]:
    """``read_metrics`` and how many non-blank lines it skipped as damaged."""
    path = os.path.join(run_dir, METRICS)
    if not os.path.isfile(path):
        raise CheckpointError(f"{run_dir} has no {METRICS}: train a run there first")
    records, damaged = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                damaged += bool(line.strip())  # a line cut short by a killed process (or damaged); the rest is good
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), (int, float)):
                records.append(record)
            else:
                damaged += 1
    return records, damaged


def first_detail(error: Exception) -> str:
    """One line of ``error``: torch's load_state_dict errors open with a heading ending in ":", so the first
    line that does not."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.strip().endswith(":")]
    return lines[0] if lines else type(error).__name__


@dataclass
class Run:
    """A loaded run folder: its task module, config, vocabulary, and the model with the saved weights."""

    path: str
    task: object
    config: object
    vocab: Vocab
    model: torch.nn.Module
    metadata: dict


BUILTIN_HANDWRITING = "builtin:handwriting"
BUILTIN_RUNS = {BUILTIN_HANDWRITING: "pretrained/handwriting"}  # inside the package (README: Data terms)


def resolve_run_dir(run_dir: str) -> str:
    """A run folder's path: ``builtin:handwriting`` names the model shipped inside the package."""
    if run_dir.startswith("builtin:"):
        if run_dir not in BUILTIN_RUNS:
            raise CheckpointError(f"unknown built-in model {run_dir!r}; built-in models: {', '.join(BUILTIN_RUNS)}")
        return os.path.join(os.path.dirname(os.path.abspath(__file__)), BUILTIN_RUNS[run_dir])
    return run_dir


def read_header(run_dir: str) -> dict:
    """The parsed ``config.json`` of ``run_dir`` (task, version, config)."""
    run_dir = resolve_run_dir(run_dir)
    path = os.path.join(run_dir, CONFIG)
    if os.path.isfile(run_dir):
        raise CheckpointError(f"{run_dir} is a file, not a run folder; give the folder that training wrote")
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"run folder {run_dir} does not exist; check the path, or train one there "
                              f"(rnnlab train TASK --out {run_dir})")
    if not os.path.exists(path):
        raise CheckpointError(f"{run_dir} is not an rnnlab run folder (no {CONFIG})")
    try:
        with open(path, encoding="utf-8") as f:
            header = json.load(f)
        if not isinstance(header["task"], str) or not isinstance(header["config"], dict):
            raise TypeError("task must be a name and config an object")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, OSError) as e:
        raise CheckpointError(f"{path} is corrupted ({e}); retrain the run") from None
    return header


def read_vocab(run_dir: str) -> Vocab:
    path = os.path.join(resolve_run_dir(run_dir), VOCAB)
    try:
        with open(path, encoding="utf-8") as f:
            vocab = Vocab.from_json(f.read())
        if vocab.kind not in Vocab.KINDS or not all(isinstance(t, str) for t in vocab.tokens):
            raise ValueError(f"kind {vocab.kind!r} with tokens that are not all strings")
        if not vocab.tokens and not vocab.features and vocab.kind != "strokes":
            raise ValueError("no tokens")
        if len(vocab.index) != len(vocab.tokens):
            raise ValueError("a token is listed twice")
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir} has no {VOCAB}; the run folder is incomplete") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, OSError) as e:
        raise CheckpointError(f"{path} is corrupted ({e}); retrain the run") from None
    return vocab


def load_run(run_dir: str, task: str | None = None, device: str = "cpu") -> Run:
    """Rebuild the model of ``run_dir`` from its files; ``task``, if given, must match the run's."""
    from .config import override
    from .tasks import TASKS

    run_dir = resolve_run_dir(run_dir)
    header = read_header(run_dir)
    if task is not None and header["task"] != task:
        raise CheckpointError(f"{run_dir} holds a {header['task']} run, not a {task} one")
    if header["task"] not in TASKS:
        raise CheckpointError(f"{run_dir} holds a run of task {header['task']!r}, which this rnnlab does not know")
    module = TASKS[header["task"]]
    try:
        config = override(module.Config(), header["config"], os.path.join(run_dir, CONFIG))
        config.validate()
    except UserError as e:
        raise CheckpointError(f"{os.path.join(run_dir, CONFIG)} is corrupted ({e}); retrain the run") from None
    vocab = read_vocab(run_dir)
    weights = os.path.join(run_dir, WEIGHTS)
    if not os.path.exists(weights):
        raise CheckpointError(f"{run_dir} has no {WEIGHTS} yet: training has not reached its first evaluation")
    try:
        state = load_file(weights, device="cpu")
        with safe_open(weights, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{weights} is corrupted or truncated ({e}); retrain or restore the run") from None
    model = module.build_model(config, vocab)
    try:
        model.load_state_dict(state)  # copies into the model's float32 parameters: fp16 weights load too
    except RuntimeError as e:
        raise CheckpointError(f"{weights} does not match {CONFIG} and {VOCAB} ({first_detail(e)})") from None
    if not state_is_finite(model):  # training never writes these: the file was damaged afterwards
        raise CheckpointError(f"{weights} holds NaN or infinite weights; it is damaged: retrain or restore the run")
    model.to(device).eval()
    return Run(run_dir, module, config, vocab, model, metadata)
