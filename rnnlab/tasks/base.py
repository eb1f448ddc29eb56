"""The task protocol: everything a task provides, so that generic code (the training loop, the Run, the
commands, plots) never has to ask a task what it can do.

A task is a class. Its class attributes and class methods describe the task: its config, presets and
model, how a result reads on the terminal, what it generates. An instance holds the data of one training
run: batches, the loss and validation. Every task implements every member; a task that does not generate
text (or strokes, or handwriting) inherits a generation method that refuses with a one-line error naming
what the run can do instead.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from ..config import TrainConfig
from ..distributed import SINGLE, World
from ..errors import UserError
from ..writing import CHUNK_POINTS

GENERATES = ("text", "strokes", "handwriting", "translation", "")  # what Task.generates may say


@dataclass(frozen=True)
class Preset:
    """A named configuration and, in one line, where its numbers come from."""

    config: TrainConfig
    source: str


# Why the tasks of whole lines of pen points (tasks/pen.py, tasks/recognize.py) refuse the compile key: on one
# CPU thread (2026-12-02) synthesis-cpu, graves-prediction and recognizer-cpu at batch 4 on the synthetic
# lines each compiled for more than 10 minutes without finishing their first step.
LONG_LINES = ("its lines are hundreds of points long and torch.compile traces its recurrent layers one point at a "
              "time, so the first step compiles for more than 10 minutes")


class Task(ABC):
    """One learning problem. Class level: the description; an instance: one run's data.

    Class attributes:
        name            the task's name on the command line and in ``config.json``
        Config          its config dataclass (a ``TrainConfig``)
        presets         ``{name: Preset}``; ``default_preset`` names the one used without ``--preset``
        generates       "text" (``sample_text``), "strokes" (``sample_strokes``), "handwriting"
                        (``write_stream``), "translation" (``translate``), or "" when the task only scores
        model_signature how its models are called, for docs and errors
        loss_is_token_mean  True when ``loss`` is a mean over the ``tokens`` it reports and a batch's rows may
                        hold different numbers of them (masked labels): the processes of a job then weight
                        their losses by their shares (distributed.py); False when every row counts alike
        compile_refused why the ``compile`` key is refused for this task, in a clause ("" when it is not)
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    presets: ClassVar[dict]
    default_preset: ClassVar[str]
    generates: ClassVar[str]
    model_signature: ClassVar[str]
    loss_is_token_mean: ClassVar[bool] = False
    compile_refused: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def loss_unit(cls, vocab) -> str:
        """What the loss of a run over ``vocab`` is in, for plots and messages ("nats per character")."""

    # -- the model ---------------------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def build_model(cls, config, vocab):
        """A fresh model for ``config`` over ``vocab`` (weights initialised as the config says)."""

    # -- one training run: the data ----------------------------------------------------------------------

    config: TrainConfig
    vocab: object
    steps_per_epoch: int

    @abstractmethod
    def __init__(self, config, vocab=None):
        """Read the data ``config`` names. ``vocab`` is the run's on resume (data outside it is an error);
        otherwise the task builds it from the data. ``self.config`` may complete ``config`` with what the data
        told (handwriting: its normalisation); ``self.steps_per_epoch`` is one pass over the training data."""

    @abstractmethod
    def train_batch(self, step: int) -> tuple:
        """``(batch, reset)`` of global step ``step``, a pure function of the step; ``reset``: the carried
        recurrent state must start afresh (a new epoch of a TBPTT stream, or whole sequences)."""

    @abstractmethod
    def loss(self, model, batch, state) -> tuple:
        """``(loss, state, tokens)``: the scalar to minimise, the state to carry, the tokens it covered."""

    @abstractmethod
    def evaluate(self, model, world: World = SINGLE) -> dict:
        """Validation metrics, at least ``"loss"`` (in ``loss_unit``); with a ``distributed.World`` of several
        processes, each scores its part and the sums are reduced, so every process gets the same metrics."""

    def prepare(self, model) -> None:
        """Give a new model what it takes from the data rather than by gradient (the recogniser: its language
        model), before training; a resumed run's checkpoint then replaces it. Default: nothing."""

    def preview(self, model, step: int, folder=None) -> str:
        """Something to show at an evaluation (a sample), or ""; may draw into ``folder.sample_path(step)``."""
        return ""

    def to(self, device) -> None:
        """Move what the batches are cut from to ``device`` once (default: nothing to move)."""

    # -- a trained run -----------------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def evaluate_run(cls, run, data: str | None = None, split: str = "valid") -> dict:
        """Score a loaded ``run`` (its ``model``, ``config``, ``vocab``, ``name``, ``builtin``) on its own
        validation split, or on ``data``; a dict with ``"loss"`` and ``"data"`` at least. ``run.name`` is
        what the user called it (a path, or builtin:NAME)."""

    @classmethod
    @abstractmethod
    def describe(cls, result: dict, vocab) -> str:
        """``result`` of :meth:`evaluate_run` as it prints on the terminal (one line, or a small table)."""

    # -- generation --------------------------------------------------------------------------------------

    @classmethod
    def sample_text(cls, model, config, vocab, prime: str, length: int, temperature: float, top_k: int,
                    top_p: float, generator) -> Iterator[str]:
        """The prime (or the task's default start), then ``length`` sampled tokens, as pieces of text."""
        raise UserError(f"a {cls.name} run does not generate text; {cls._instead()}")

    @classmethod
    def sample_strokes(cls, model, config, points: int, bias: float, generator):
        """``points`` pen offsets drawn unconditionally, as a ``writing.Handwriting`` of one line."""
        raise UserError(f"a {cls.name} run does not draw unconditional strokes; {cls._instead()}")

    @classmethod
    def write_stream(cls, model, config, vocab, texts: list, bias: float, generator, style=None,
                     chunk: int = CHUNK_POINTS):
        """``texts`` written as handwriting, one line each: an iterator of ``writing.Chunk``s as the points are
        drawn (every ``chunk`` steps; 0: at the end), then the ``writing.Handwriting``. Bad input fails on the
        call, before any sampling."""
        raise UserError(f"a {cls.name} run cannot write a given text (train one with: rnnlab train synthesis); "
                        f"{cls._instead()}")

    @classmethod
    def translate(cls, model, config, vocab, texts: list, beam: int, alpha: float) -> list:
        """``texts`` translated (a sequence-to-sequence run): ``(text, decoding.Hypothesis)`` each, decoded by
        a beam of ``beam`` (1: greedy) with length penalty ``alpha``."""
        raise UserError(f"a {cls.name} run does not translate (train one with: rnnlab train seq2seq); "
                        f"{cls._instead()}")

    @classmethod
    def read(cls, model, config, vocab, lines: list, beam: int, lm_weight: float) -> list[str]:
        """The texts of ``lines`` of ink (``(N, 3)`` offsets each, data units or any other), decoded by a beam
        of ``beam`` prefixes (0: the best path) with the language model at ``lm_weight``."""
        raise UserError(f"a {cls.name} run does not read handwriting (train one with: rnnlab train recognize); "
                        f"{cls._instead()}")

    @classmethod
    def _instead(cls) -> str:
        return {"text": "sample text from it (Run.sample, rnnlab sample RUN)",
                "strokes": "draw unconditional strokes with it (Run.sample, rnnlab sample RUN -o out.svg)",
                "handwriting": "write a text with it (Run.write, rnnlab write TEXT --model RUN -o out.png)",
                "translation": "translate with it (Run.translate, rnnlab translate RUN TEXT)",
                "": "score it (Run.evaluate, rnnlab evaluate RUN)"}[cls.generates]
