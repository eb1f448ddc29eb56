"""The public API: a trained model is a :class:`Run`, loaded with :func:`load` or made by :func:`train`.

In a notebook::

    import rnnlab
    rnnlab.load("builtin:handwriting").write("Hello world", seed=1)        # shows itself as SVG
    run = rnnlab.train("charlm", "runs/quick", max_steps=300)
    print(run.sample("ROMEO:", length=200, temperature=0.8, seed=1), run.evaluate())

The ``rnnlab`` command is a thin layer over these calls. Errors a user can fix are ``rnnlab.UserError``s
with one line that names the parameter.
"""

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
import logging
import os

import torch

from . import distributed
from .checkpoint import load_into, shape_mismatch
from .config import check_seed, override, resolve, shown, to_toml
from .data.text import Vocab
from .errors import CheckpointError, UserError
from .folder import RunFolder
from .tasks import TASKS, Preset
from .threads import check_threads, threads
from .loop import check_state, resolve_device, train as run_loop
from .writing import CHUNK_POINTS, Chunk, Handwriting, Style, check_bias, split_lines

log = logging.getLogger(__name__)


@dataclass
class Run:
    """A trained model and everything needed to use it: its task (a ``tasks.Task`` class), config,
    vocabulary, and the model with the saved weights, in eval mode on ``device``.

    ``name`` is what it was loaded as (a path, or ``builtin:NAME``); ``folder`` the run folder;
    ``metadata`` the weights' (step, validation loss); ``summary`` the training's, for a run :func:`train`
    just made (None when loaded).
    """

    name: str
    folder: RunFolder
    task: type
    config: object
    vocab: Vocab
    model: torch.nn.Module
    metadata: dict = field(default_factory=dict)
    summary: dict | None = None

    @property
    def path(self) -> str:
        return self.folder.path

    @property
    def builtin(self) -> bool:
        return self.folder.builtin

    def __repr__(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        step = self.metadata.get("step", "?")
        return f"Run({self.name!r}, task={self.task.name!r}, {params:,} parameters, step {step})"

    def stream(self, prime: str = "", length: int = 500, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0, seed: int | torch.Generator | None = None, threads: int = 1) -> Iterator[str]:
        """Text as it is sampled: the prime first ("" = a fresh line), then ``length`` tokens one at a time
        (a character, or a word and its space). ``temperature`` 0 is greedy; ``top_k`` 0 and ``top_p`` 1 keep
        every token; the same ``seed`` gives the same text (None: a random one; a ``torch.Generator`` on the
        model's device: go on drawing from it). ``threads``: CPU threads while sampling (one token at a time:
        1 is fastest, threads.py)."""
        check_threads(threads, "threads")
        pieces = self.task.sample_text(self.model, self.config, self.vocab, prime, length, temperature, top_k, top_p,
                                       generator(self, seed))
        return _in_threads(self.model, threads, pieces)

    def sample(self, prime: str = "", length: int = 500, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0, seed: int | None = None, bias: float = 0.0, threads: int = 1):
        """A text run: the prime and ``length`` sampled tokens, as one string (see :meth:`stream`).
        A handwriting prediction run: ``length`` pen points drawn unconditionally, as :class:`Handwriting`,
        with Graves' ``bias`` (0 = plain; prime, temperature, top_k and top_p are for text). ``threads``: as
        in :meth:`stream`."""
        if self.task.generates == "strokes":
            given = [name for name, value, default in (("prime", prime, ""), ("temperature", temperature, 1.0),
                                                       ("top_k", top_k, 0), ("top_p", top_p, 1.0)) if value != default]
            if given:
                raise UserError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for text runs; a handwriting "
                                f"run draws one unconditional sample, shaped by bias (to write a text: a synthesis "
                                f"run)")
            check_bias(bias)
            with _sampling_threads(self.model, threads):
                return self.task.sample_strokes(self.model, self.config, length, bias, generator(self, seed))
        if bias:
            raise UserError(f"bias is for handwriting runs; a {self.task.name} run samples text, shaped by "
                            f"temperature, top_k and top_p")
        return "".join(self.stream(prime, length, temperature, top_k, top_p, seed, threads))

    def write(self, text: str, bias: float = 1.5, style: int | str | Style | None = None, seed: int | None = None,
              wrap: int = 0, threads: int = 1) -> Handwriting:
        """``text`` as handwriting (a synthesis run): one line per line of ``text`` (a newline, or ``wrap`` > 0
        characters at most), sampled together. ``bias`` 0 writes as varied as the data, larger is neater
        (Graves §5.4); ``style`` primes the hand: the number of one of the run's styles, a JSON file
        ``{"text", "offsets"}``, or a ``writing.Style``; the same ``seed`` gives the same writing. Each line is
        at most as long as the longest the model was trained on (``config.max_text_length``)."""
        *_, written = self.write_stream(text, bias, style, seed, wrap, threads, chunk=0)
        return written

    def write_stream(self, text: str, bias: float = 1.5, style: int | str | Style | None = None,
                     seed: int | None = None, wrap: int = 0, threads: int = 1,
                     chunk: int = CHUNK_POINTS) -> Iterator[Chunk | Handwriting]:
        """:meth:`write` as the pen moves: ``writing.Chunk``s (a line's index and its next points, ``(n, 3)``
        offsets in data units) every ``chunk`` points as they are sampled, then the whole ``Handwriting``,
        equal to what :meth:`write` returns for the same arguments. Bad arguments fail here, before anything
        is sampled."""
        check_bias(bias)
        lines = split_lines(text, wrap)
        if isinstance(style, int) or (isinstance(style, str) and style.isascii() and style.isdigit()):
            styles = self.styles
            if len(str(style)) > 6 or not 0 <= int(style) < len(styles):
                available = f"0 to {len(styles) - 1}" if styles else "none"
                raise UserError(f"style {shown(style)}: this model has {len(styles)} built-in styles ({available}); "
                                f"or give a JSON file with \"text\" and \"offsets\"")
            style = styles[int(style)]
        check_threads(threads, "threads")
        if chunk < 0:
            raise UserError(f"chunk must be >= 0 points (0: the whole lines at the end), got {chunk}")
        pieces = self.task.write_stream(self.model, self.config, self.vocab, lines, bias, generator(self, seed), style,
                                        chunk)
        return _in_threads(self.model, threads, _warn_if_cut(pieces))

    def drawn_style(self, points, text: str) -> Style:
        """A style from a line drawn on a screen, for :meth:`write`: ``points`` ``(N, 3)`` absolute ``(x, y,
        end_of_stroke)`` with y pointing down, in any unit, ``text`` what it says; resampled to the run's
        writing speed and scaled to its data (``primer.style_from_drawing``)."""
        from .primer import style_from_drawing

        if self.task.generates != "handwriting":
            raise UserError(f"a drawn style primes a synthesis run; {self.task._instead()}")
        return style_from_drawing(points, text, self.config.chars_per_point, self.config.stats)

    def read(self, strokes, beam: int | None = None, lm_weight: float | None = None, threads: int = 1) -> str:
        """The text of handwriting (a recognize run), a line of text per line of ink: ``strokes`` a
        ``Handwriting``, an ``(N, 3)`` array of offsets ``(dx, dy, end_of_stroke)`` with y up, in any unit, or
        the path of a JSON strokes file (``Handwriting.save``'s, or a style file). ``beam`` prefixes of the
        beam search (0: the best path) and the language model's ``lm_weight`` default to the run's
        (``config.beam``, ``config.lm_weight``); ``threads``: CPU threads while reading."""
        from .ink import read_strokes

        if isinstance(strokes, Handwriting):
            lines = strokes.lines
        elif isinstance(strokes, (str, os.PathLike)):
            lines = read_strokes(os.fspath(strokes))
        else:
            lines = [strokes]
        return "\n".join(self.read_lines(lines, beam, lm_weight, threads))

    def read_lines(self, lines: list, beam: int | None = None, lm_weight: float | None = None,
                   threads: int = 1) -> list[str]:
        """:meth:`read` of a list of lines of ink (``(N, 3)`` offsets each): their texts, read in batches."""
        with _sampling_threads(self.model, threads):
            return self.task.read(self.model, self.config, self.vocab, lines,
                                  getattr(self.config, "beam", 0) if beam is None else beam,
                                  getattr(self.config, "lm_weight", 0.0) if lm_weight is None else lm_weight)

    def translate(self, text: str, beam: int | None = None, length_penalty: float | None = None,
                  threads: int = 1) -> str:
        """``text`` translated by a seq2seq run, line by line (one output line per non-blank input line).
        ``beam`` (1: greedy) and the beam's ``length_penalty`` (Wu et al. 2016's alpha) default to the run's."""
        return "\n".join(t for t, _ in self.translations(text, beam, length_penalty, threads))

    def translations(self, text: str, beam: int | None = None, length_penalty: float | None = None,
                     threads: int = 1) -> list:
        """:meth:`translate`'s lines as ``(text, decoding.Hypothesis)``: the tokens, their log-probability and
        the attention weights over the source (for ``rnnlab plot RUN --attention``)."""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            raise UserError("the text to translate is empty; give at least one non-blank line")
        beam = getattr(self.config, "beam", 1) if beam is None else beam
        alpha = getattr(self.config, "length_penalty", 0.0) if length_penalty is None else length_penalty
        if not 1 <= beam <= 256:
            raise UserError(f"beam must be between 1 (greedy) and 256, got {beam}")
        if alpha < 0:
            raise UserError(f"length_penalty must be >= 0 (0: none), got {alpha}")
        with _sampling_threads(self.model, threads):
            return self.task.translate(self.model, self.config, self.vocab, lines, beam, alpha)

    @property
    def styles(self) -> list:
        """The run's built-in styles (``writing.Style``: text and offsets), for ``write(style=n)``."""
        return self.folder.read_styles()

    def evaluate(self, data: str | None = None, split: str = "valid") -> dict:
        """Score the run on its own validation split, or on ``data`` (a text, corpus folder, JSONL file or
        IAM-OnDB archive, as the task reads); ``split`` "test" for a word corpus, "all" for every line of an
        IAM-OnDB ``data``. Returns the task's metrics: ``loss`` (in the task's unit) and more."""
        return self.task.evaluate_run(self, data, split)

    def describe(self, result: dict) -> str:
        """A result of :meth:`evaluate` as the terminal shows it."""
        return self.task.describe(result, self.vocab)


def generator(run: Run, seed: int | torch.Generator | None) -> torch.Generator:
    """A generator on ``run``'s device seeded with ``seed`` (random when None; a generator is used as it is):
    sampling never touches the global RNG a training resumes from."""
    if isinstance(seed, torch.Generator):
        return seed
    check_seed(seed, "seed")
    made = torch.Generator(next(run.model.parameters()).device)
    made.manual_seed(seed if seed is not None else torch.seed())
    return made


def _in_threads(model, count: int, pieces: Iterator) -> Iterator:
    """``pieces`` computed with ``count`` CPU threads (:func:`_sampling_threads`), from the first to the last."""
    with _sampling_threads(model, count):
        yield from pieces


def _warn_if_cut(pieces: Iterator) -> Iterator:
    for piece in pieces:
        if isinstance(piece, Handwriting):
            for line, stopped in zip(piece.texts, piece.stopped):
                if not stopped:
                    log.warning("the line %r did not reach its end before the cap of points and was cut there", line)
        yield piece


@contextmanager
def _sampling_threads(model, count: int):
    """``count`` CPU threads while sampling on the CPU (1 by default: one token or point at a time is
    latency-bound, and a second OpenMP thread only adds synchronisation, benchmarks/results.md), the caller's
    setting restored after."""
    check_threads(count, "threads")
    with threads(count) if next(model.parameters()).device.type == "cpu" else nullcontext():
        yield


def load(path_or_builtin: str, device: str = "cpu") -> Run:
    """The run in the folder ``path_or_builtin`` (or the bundled ``builtin:handwriting``), its model rebuilt
    from ``config.json`` and ``vocab.json`` with the best saved weights, on ``device`` ("cpu", "cuda", "auto")."""
    folder = RunFolder(path_or_builtin)
    header = folder.read_header()
    if header["task"] not in TASKS:
        raise CheckpointError(f"{folder.name} holds a run of task {header['task']!r}, which this rnnlab does not know")
    task = TASKS[header["task"]]
    config = stored_config(folder, task, header)
    vocab = folder.read_vocab()
    check_shapes(folder, task, config, vocab)
    state, metadata = folder.read_weights()
    model = task.build_model(config, vocab)
    load_into(model, state, folder.weights_path, "config.json and vocab.json")
    model.to(resolve_device(device)).eval()
    return Run(path_or_builtin, folder, task, config, vocab, model, metadata)


def stored_config(folder: RunFolder, task, header: dict):
    """The config a run folder's header holds, validated as training validates it (every size bounded)."""
    try:
        config = override(task.Config(), header["config"], folder.config_path)
        config.validate()
    except UserError as e:
        raise CheckpointError(f"{folder.config_path} is corrupted ({e}); retrain the run") from None
    return config


def check_shapes(folder: RunFolder, task, config, vocab: Vocab) -> None:
    """The model ``config`` and ``vocab`` describe must have the shapes of the saved weights: compared on
    torch's meta device against the safetensors header, so a damaged config.json (hidden_size 10^6) is an
    error before anything is allocated or read."""
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in task.build_model(config, vocab).state_dict().items()}
    mismatch = shape_mismatch(expected, folder.weight_shapes())
    if mismatch:
        raise CheckpointError(f"{folder.weights_path} does not match config.json and vocab.json ({mismatch})")


def task_named(name: str) -> type:
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return TASKS[name]


def presets(task: str) -> dict[str, Preset]:
    """The named configurations of ``task``: ``{name: Preset(config, source)}``."""
    return dict(task_named(task).presets)


def configure(task: str, preset: str | None = None, config: str | None = None, **overrides):
    """The config a training of ``task`` would use: ``preset`` (default: the task's), then the TOML file
    ``config``, then ``overrides`` (config keys, typed or as strings); validated."""
    spec = task_named(task)
    name = preset or spec.default_preset
    if name not in spec.presets:
        owners = [t.name for t in TASKS.values() if name in t.presets]
        elsewhere = f"; it is a preset of {owners[0]}: rnnlab train {owners[0]} --preset {name}" if owners else ""
        raise UserError(f"unknown preset {name!r} for {task}; its presets: {', '.join(spec.presets)}{elsewhere}")
    return resolve(spec.presets, name, config, (), overrides)


def config_toml(task: str, preset: str | None = None, config: str | None = None, **overrides) -> str:
    """:func:`configure`'s result as TOML, which ``train(config=...)`` (``--config``) reads back."""
    return to_toml(configure(task, preset, config, **overrides))


def train(task: str, out: str, preset: str | None = None, data: str | None = None, resume: bool = False,
          force: bool = False, config: str | None = None, **overrides) -> Run:
    """Train ``task`` into the run folder ``out`` and return the :class:`Run` with its best weights.

    ``preset`` names a configuration (``presets(task)``), ``config`` a TOML file over it, and ``overrides``
    are config keys over both (``max_steps=60, seed=1, device="cpu"``); ``data`` is the task's data (a
    path, or a name such as ``ptb``). An ``out`` that holds a run is refused unless ``resume`` (continue it,
    its own config with ``overrides`` applied) or ``force`` (replace it, once the new run has its first
    checkpoint). Ctrl-C or SIGTERM stops after the current step with a resumable save
    (``errors.TrainingInterrupted``).
    """
    spec = task_named(task)
    if not str(out).strip():
        raise UserError("out (--out) is empty; give the run folder, for example runs/mine")
    if resume and force:
        raise UserError("resume (--resume) continues the run in out and force (--force) replaces it; pass one of them")
    if data is not None:
        # A path is stored absolute, so evaluate finds it from anywhere; a name (builtin:..., ptb) as it is.
        overrides["data"] = os.path.abspath(data) if os.path.exists(data) else data
    folder = RunFolder(str(out))
    world = distributed.from_env()
    own = _own_checkpoint(folder) if world.restarts and not resume else None
    if own is not None:
        resume, force = True, False  # torchrun --max-restarts started the job again: go on from its checkpoint
    # Rank 0 alone holds the folder and writes to it; the others read what they need before the first
    # collective (DDP's start), after which rank 0 begins writing.
    with folder.training() if world.writer else nullcontext():  # the lock first: a folder in use is refused
        header = folder.existing_run(force)
        vocab = saved = None
        if resume:
            if header is None:
                raise UserError(f"resume (--resume): {out} holds no run to resume; drop it to start one")
            if header["task"] != task:
                raise UserError(f"resume (--resume): {out} holds a {header['task']} run, not a {task} one")
            if preset or config:
                raise UserError("resume (--resume) continues the run's own config; drop preset and config (--preset, "
                                "--config) and override keys instead (--set KEY=VALUE)")
            stored = stored_config(folder, spec, header)
            vocab = folder.read_vocab()
            if folder.has_weights():  # a damaged config.json fails here, before a model of its size is built
                check_shapes(folder, spec, stored, vocab)
            settings = override(stored, overrides, "the overrides")
            settings.validate()
            saved = own or folder.load_train_state()  # read now: a damaged one fails before anything is written
            check_state(saved, folder.name)
        else:
            if header is not None and not force:
                raise UserError(f"{out} already holds a {header['task']} run; resume it (--resume) or replace it "
                                f"(--force), or choose another folder")
            settings = configure(task, preset, config, **overrides)
        distributed.check_batch(settings.batch_size, world)
        resolve_device(settings.device)  # cuda without a GPU fails before the data is read
        if header is not None and force and world.writer:
            folder.stage()
        try:
            distributed.join(world, resolve_device(settings.device), settings.dist_timeout)
            torch.manual_seed(settings.seed)
            data_task = spec(settings, vocab)  # on resume, data outside the run's vocabulary is refused here
            settings = data_task.config  # a task may fill in what it learnt from the data (handwriting: normalisation)
            model = spec.build_model(settings, data_task.vocab)
            data_task.prepare(model)
            log.info("%s: %s parameters, preset %s, run folder %s%s", task,
                     f"{sum(p.numel() for p in model.parameters()):,}",
                     preset or ("(resumed)" if resume else spec.default_preset), out,
                     f", {world.size} processes" if world.size > 1 else "")
            summary = run_loop(model, data_task, settings, folder, resume=resume, saved=saved, world=world)
            world.barrier()  # rank 0 has written the last checkpoint before any process reads it
        except RuntimeError as e:  # a peer gone before the loop (DDP's start) or after it (the last barrier)
            if world.size == 1 or not distributed.is_collective_failure(e):
                raise
            raise UserError(f"another process of the job failed or stopped answering "
                            f"({distributed.collective_detail(e)})") from None
    run = load(str(out), device=str(next(model.parameters()).device))
    run.summary = summary
    return run


def _own_checkpoint(folder: RunFolder) -> dict | None:
    """The training state in ``folder`` when this very job wrote it (its torchrun id, ``--rdzv-id``, is
    stored with it), for a job torchrun restarted; None otherwise, never a run that was there before."""
    if distributed.job_id() is None or not folder.has_train_state():
        return None
    try:
        saved = folder.load_train_state()
    except UserError:
        return None  # unreadable: the ordinary path reports it
    return saved if saved.get("job") == distributed.job_id() else None


def plot(path: str, output: str, attention: str | None = None) -> None:
    """Draw the loss curves of the run at ``path`` (and its last confusion matrix, for classes) to ``output``
    (.png, .svg or .pdf). Works while the run trains, before it has weights. With ``attention`` (a text, for
    a seq2seq run with attention): the alignment of its translation instead, source x target."""
    from .draw import plot_alignment, plot_curves

    if attention is not None:
        run = load(path)
        (text, found), = run.translations(attention.splitlines()[0] if attention.strip() else "")
        if found.attention is None:
            raise UserError(f"{path} translates without attention (attention = none): it has no alignment to plot")
        source = run.task.source_tokens(run.config, attention.splitlines()[0].strip())
        plot_alignment(source, run.task.target_tokens(run.vocab, found), found.attention.cpu().numpy(), output)
        return

    folder = RunFolder(path)
    header = folder.read_header()
    task = task_named(header["task"])
    vocab = folder.read_vocab()
    records, _ = folder.read_metrics()
    plot_curves(records, output, os.path.basename(os.path.abspath(folder.path)), task.loss_unit(vocab), vocab.labels)
