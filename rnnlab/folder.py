"""A run folder on disk: the one module that knows its layout, from creation to loading::

    RUN/
      config.json        task name + every config field: enough to rebuild the model
      vocab.json         the vocabulary (tokens in id order)
      model.safetensors  weights with the best validation loss: all that sampling and evaluation load (no pickle)
      train_state.pt     the last resumable save (weights, optimiser, schedule, RNG states, step, carried
                         recurrent state), for --resume only; loaded with torch.load(weights_only=True)
      metrics.jsonl      one JSON object per log step and per evaluation
      samples/           what a task draws at each evaluation (handwriting: step-0000200.svg)
      styles.json        primers for writing (the bundled model only)
      .lock              held (flock) by the training that writes the folder, with its PID

Every file is written with ``files.atomic_write``: a process killed at any moment leaves the previous
version of each file loadable. ``train_state.pt`` is self-contained, so resuming never mixes two steps.

A training takes the folder's lock first: a second training (or a ``--force``) on a folder in use is
refused with the holder's PID, and a lock whose process died is free again (the kernel drops a flock with
its process). ``--force`` trains beside the old run, in ``RUN/.replacing-PID/``, and swaps the new files in
only when the new run saves its first checkpoint: a replacement that fails early loses nothing.
"""

from contextlib import contextmanager
from dataclasses import asdict
import json
import logging
import math
import os
import shutil

from . import checkpoint
from .data.text import Vocab
from .errors import CheckpointError, UserError
from .files import JSONError, check_file, parse_json, pid_alive, read_bytes, read_json, remove_stale_temps, write_text
from .version import __version__

log = logging.getLogger(__name__)

CONFIG = "config.json"
VOCAB = "vocab.json"
WEIGHTS = "model.safetensors"
TRAIN_STATE = "train_state.pt"
METRICS = "metrics.jsonl"
SAMPLES = "samples"
STYLES = "styles.json"  # [{"text": ..., "offsets": [[dx, dy, end_of_stroke], ...]}, ...]
LOCK = ".lock"
STAGING = ".replacing-"  # + PID: a --force run until its first checkpoint
# A new run's files, in the order a --force swaps them in: the checkpoint last, so a folder caught half-way
# holds no checkpoint of the new run beside the old one's config.
RUN_FILES = (CONFIG, VOCAB, METRICS, SAMPLES, WEIGHTS, TRAIN_STATE)

BUILTIN_PREFIX = "builtin:"
BUILTIN_RECOGNIZER = "builtin:recognizer"
# inside the package (README: Data terms); the first is what rnnlab write uses by default
BUILTIN_RUNS = {"builtin:handwriting": "pretrained/handwriting", BUILTIN_RECOGNIZER: "pretrained/recognizer"}


class RunFolder:
    """The run folder at ``name``: a path, or ``builtin:NAME`` for a model shipped inside the package.

    ``path`` is where it is; ``name`` what the user called it (for messages); ``builtin`` whether it ships
    with rnnlab (read-only).
    """

    def __init__(self, name: str):
        self.name = name
        self.builtin = name.startswith(BUILTIN_PREFIX)
        if self.builtin:
            if name not in BUILTIN_RUNS:
                raise CheckpointError(f"unknown built-in model {name!r}; built-in models: {', '.join(BUILTIN_RUNS)}")
            self.path = os.path.join(os.path.dirname(os.path.abspath(__file__)), BUILTIN_RUNS[name])
        else:
            self.path = name
        self.root = self.path  # where a training writes: the folder, or its staging area during a --force
        self._lock_fd = None

    def __repr__(self) -> str:
        return f"RunFolder({self.name!r})"

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -- reading ---------------------------------------------------------------------------------------

    def read_header(self) -> dict:
        """The parsed ``config.json`` (task, version, config), upgraded from older rnnlab versions."""
        path = self._file(CONFIG)
        if os.path.isfile(self.path):
            raise CheckpointError(f"{self.name} is a file, not a run folder; give the folder that training wrote")
        if not os.path.isdir(self.path):
            raise CheckpointError(f"run folder {self.name} does not exist; check the path, or train one there "
                                  f"(rnnlab train TASK --out {self.name})")
        if not os.path.lexists(path):
            raise CheckpointError(f"{self.name} is not an rnnlab run folder (no {CONFIG})")
        try:
            header = read_json(path, "config", "the run's config", "retrain the run")
            if not isinstance(header, dict) or not isinstance(header.get("task"), str) \
                    or not isinstance(header.get("config"), dict):
                raise TypeError("it must hold a task name and a config object")
        except (JSONError, TypeError) as e:
            raise CheckpointError(f"{path} is corrupted ({getattr(e, 'reason', e)}); retrain the run") from None
        except UserError as e:  # not a regular file, over the cap
            raise CheckpointError(str(e)) from None
        return _upgrade(header)

    def read_vocab(self) -> Vocab:
        path = self._file(VOCAB)
        if not os.path.lexists(path):
            raise CheckpointError(f"{self.name} has no {VOCAB}; the run folder is incomplete")
        try:
            vocab = Vocab.from_data(read_json(path, "vocabulary", "the run's vocabulary", "retrain the run"))
            if vocab.kind not in Vocab.KINDS or not all(isinstance(t, str) for t in vocab.tokens):
                raise ValueError(f"kind {vocab.kind!r} with tokens that are not all strings")
            if not vocab.tokens and not vocab.features and vocab.kind != "strokes":
                raise ValueError("no tokens")
            if len(vocab.index) != len(vocab.tokens):
                raise ValueError("a token is listed twice")
        except JSONError as e:
            raise CheckpointError(f"{path} is corrupted ({e.reason}); retrain the run") from None
        except UserError as e:  # not a regular file, over the cap
            raise CheckpointError(str(e)) from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{path} is corrupted ({e}); retrain the run") from None
        return vocab

    @property
    def config_path(self) -> str:
        """``config.json``, for messages about its content."""
        return self._file(CONFIG)

    @property
    def weights_path(self) -> str:
        return self._file(WEIGHTS)

    def read_weights(self) -> tuple[dict, dict]:
        """The saved weights (CPU tensors) and their metadata."""
        if not os.path.lexists(self.weights_path):
            raise CheckpointError(f"{self.name} has no {WEIGHTS} yet: training has not reached its first evaluation")
        self._check(self.weights_path)
        return checkpoint.read_weights(self.weights_path)

    def weight_shapes(self) -> dict:
        """``{name: shape}`` of the saved weights, from the safetensors header alone (nothing allocated)."""
        self._check(self.weights_path)
        return checkpoint.weight_shapes(self.weights_path)

    def _check(self, path: str) -> None:
        try:
            check_file(path, "checkpoint", "the run's checkpoint", "retrain or restore the run")
        except UserError as e:
            raise CheckpointError(str(e)) from None

    def has_weights(self) -> bool:
        return os.path.lexists(self.weights_path)

    def has_metrics(self) -> bool:
        return os.path.lexists(self._file(METRICS))

    def has_train_state(self) -> bool:
        return os.path.exists(self._file(TRAIN_STATE))

    def has_checkpoint(self) -> bool:
        """Whether the folder holds a run worth keeping: weights or a resumable state."""
        return any(os.path.exists(self._file(name)) for name in (WEIGHTS, TRAIN_STATE))

    def load_train_state(self) -> dict:
        path = self._file(TRAIN_STATE)
        if not os.path.lexists(path):
            raise CheckpointError(f"{self.name} has no {TRAIN_STATE} to resume from; train without --resume")
        self._check(path)
        return checkpoint.load_train_state(path)

    def read_metrics(self) -> tuple[list[dict], int]:
        """The records of ``metrics.jsonl`` that parse and carry a step, and how many non-blank lines were
        damaged (most often one line cut short by a killed process)."""
        path = self._file(METRICS)
        if not os.path.lexists(path):
            raise CheckpointError(f"{self.name} has no {METRICS}: train a run there first")
        try:
            text = read_bytes(path, "metrics", "the run's metrics", "remove it, or train the run again").decode(
                "utf-8", errors="replace")
        except UserError as e:
            raise CheckpointError(str(e)) from None
        records, damaged = [], 0
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = parse_json(line, f"{path} line {n}")
            except JSONError:  # a line cut short by a killed process, or damaged: the others are good
                damaged += 1
                continue
            step = record.get("step") if isinstance(record, dict) else None
            if isinstance(step, int) and not isinstance(step, bool) and 0 <= step:
                records.append(record)
            else:
                damaged += 1
        return records, damaged

    def read_styles(self) -> list:
        """The folder's styles (``writing.Style``), none when it has no ``styles.json``."""
        from .writing import read_styles

        path = self._file(STYLES)
        return read_styles(path) if os.path.exists(path) else []

    # -- writing (a training, holding the lock) ----------------------------------------------------------

    def check_writable(self) -> None:
        """Refuse a path that cannot become a run folder (a file, or below one), before anything is made."""
        if self.builtin:
            raise UserError(f"{self.name} is a model shipped with rnnlab; train into a folder of yours (--out PATH)")
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise UserError(f"--out {self.name} is a file; give a folder for the run")
        parent = os.path.dirname(os.path.abspath(self.path))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise UserError(f"--out {self.name}: {parent} is a file, so the run folder cannot be made there")

    def existing_run(self, force: bool = False) -> dict | None:
        """The header of the run in the folder, or None when it holds none worth keeping (no checkpoint yet; with
        ``force``, a damaged one too)."""
        if not os.path.exists(self._file(CONFIG)) or not self.has_checkpoint():
            return None
        try:
            return self.read_header()
        except UserError:
            if force:
                return None
            raise

    @contextmanager
    def training(self):
        """Hold the folder for a training: take its lock (creating the folder) and clear what killed processes
        left. On an error or an interrupt before a --force run's first checkpoint (:meth:`stage`), the staging
        area goes and the old run stays; a folder this call created is removed again if nothing was saved."""
        self.check_writable()
        created = not os.path.exists(self.path)
        os.makedirs(self.path, exist_ok=True)
        self._take_lock()
        try:
            self._clear_leftovers()
            yield self
        except BaseException:
            if self.replacing and os.path.exists(os.path.join(self.root, METRICS)):  # it had begun to train
                log.info("the new run never saved a checkpoint; the previous run in %s is kept", self.name)
            raise
        finally:
            if self.replacing:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = self.path
            self._release_lock()
            if created and set(os.listdir(self.path)) <= {LOCK}:
                shutil.rmtree(self.path, ignore_errors=True)

    def stage(self) -> None:
        """Write the new run beside the one in the folder (``--force``), until its first checkpoint swaps it in."""
        assert self._lock_fd is not None, "stage() is for a folder held by training()"
        self.root = self._file(f"{STAGING}{os.getpid()}")
        os.makedirs(self.root)

    @property
    def replacing(self) -> bool:
        """Whether a --force run is still writing beside the old one (before its first checkpoint)."""
        return self.root != self.path

    def begin(self, task: str, config, vocab: Vocab, resume: bool) -> None:
        """Write ``config.json`` and ``vocab.json`` of the run starting (or resuming) now; a new run in the
        folder itself first removes what an earlier run that never checkpointed left."""
        if not resume and not self.replacing:
            for name in (WEIGHTS, TRAIN_STATE, METRICS):
                if os.path.exists(self._file(name)):
                    os.remove(self._file(name))
            shutil.rmtree(self._file(SAMPLES), ignore_errors=True)
        payload = {"task": task, "rnnlab_version": __version__, "config": asdict(config)}
        write_text(os.path.join(self.root, CONFIG), json.dumps(payload, indent=2) + "\n")
        write_text(os.path.join(self.root, VOCAB), vocab.to_json() + "\n")

    def append_metrics(self, record: dict) -> None:
        """Append ``record`` as one JSON line; a NaN or infinite number (a diverged evaluation) is written as
        null, since JSON has no such numbers and the reader refuses them."""
        record = {k: v if not isinstance(v, float) or math.isfinite(v) else None for k, v in record.items()}
        with open(os.path.join(self.root, METRICS), "a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=False) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """Drop records after ``step``: on resume, the steps past the checkpoint are run again."""
        if not os.path.exists(self._file(METRICS)):
            return
        records, damaged = self.read_metrics()
        if damaged:
            log.warning("%s: %d damaged line(s) dropped on resume", self._file(METRICS), damaged)
        kept = [record for record in records if record["step"] <= step]
        write_text(self._file(METRICS), "".join(json.dumps(record) + "\n" for record in kept))

    def sample_path(self, step: int, extension: str = ".svg") -> str:
        """Where the sample drawn at ``step`` goes (the folder is created)."""
        folder = os.path.join(self.root, SAMPLES)
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f"step-{step:07d}{extension}")

    def save_weights(self, model, step: int, metadata: dict | None = None) -> None:
        checkpoint.save_weights(os.path.join(self.root, WEIGHTS), model, step, metadata)

    def save_train_state(self, state: dict) -> None:
        """Save the resumable state; the first one of a --force run swaps the new run in."""
        checkpoint.save_train_state(os.path.join(self.root, TRAIN_STATE), state)
        if self.replacing:
            self._swap_in()

    def _swap_in(self) -> None:
        for name in (TRAIN_STATE, WEIGHTS, METRICS, SAMPLES):  # the old run stops being a run first
            path = self._file(name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
        for name in RUN_FILES:
            staged = os.path.join(self.root, name)
            if os.path.exists(staged):
                os.replace(staged, self._file(name))
        shutil.rmtree(self.root)
        self.root = self.path
        log.info("the new run saved its first checkpoint: it replaced the previous run in %s", self.name)

    def write_bundle(self, header: dict, vocab: Vocab, tensors: dict, metadata: dict, styles: list, terms: str) -> None:
        """Write a model to ship inside the package (``scripts/bundle.py``): its header, vocabulary,
        weights (as given: fp16 for the bundled model), styles (``[{"text", "offsets"}]``) and terms of use."""
        os.makedirs(self.path, exist_ok=True)
        write_text(self._file(CONFIG), json.dumps(header, indent=2) + "\n")
        write_text(self._file(VOCAB), vocab.to_json() + "\n")
        checkpoint.write_safetensors(self._file(WEIGHTS), tensors, metadata)
        write_text(self._file(STYLES), json.dumps(styles))
        write_text(self._file("TERMS.md"), terms)

    # -- the lock ----------------------------------------------------------------------------------------

    def _take_lock(self) -> None:
        import fcntl

        fd = os.open(self._file(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"{self.name} is in use by another training (PID {holder}); wait for it to finish, "
                            f"stop it (kill {holder}), or choose another --out") from None
        previous = os.read(fd, 32).decode(errors="replace").strip()
        if previous.isdigit() and int(previous) != os.getpid() and not pid_alive(int(previous)):
            log.info("%s: took over the lock of process %s, which no longer runs", self.name, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        # The file stays (removing it would let a process that opened it just before lock a deleted file);
        # emptied, it says nobody holds it.
        os.ftruncate(self._lock_fd, 0)
        os.close(self._lock_fd)
        self._lock_fd = None

    def _clear_leftovers(self) -> None:
        """What killed processes left: temporary files of unfinished saves, staging areas of --force runs."""
        removed = remove_stale_temps(self.path) + remove_stale_temps(self._file(SAMPLES))
        for name in os.listdir(self.path):
            if name.startswith(STAGING):
                shutil.rmtree(self._file(name), ignore_errors=True)
                removed.append(name)
        if removed:
            log.info("%s: removed %d file(s) left by a killed process (%s)", self.name, len(removed),
                     ", ".join(removed))


def _upgrade(header: dict) -> dict:
    """A header written by an older rnnlab, in today's terms. Before 0.2, both handwriting networks were the
    task "handwriting", told apart by ``window_gaussians`` (0: prediction); now they are two tasks, and each
    config holds only its own keys."""
    config = header["config"]
    if header["task"] != "handwriting" or "window_gaussians" not in config:
        return header
    config = dict(config)
    if config["window_gaussians"]:
        config.pop("peepholes", None)  # the synthesis network never had them
        return {**header, "task": "synthesis", "config": config}
    for key in ("window_gaussians", "alphabet", "chars_per_step", "max_text_length"):
        config.pop(key, None)
    return {**header, "config": config}
