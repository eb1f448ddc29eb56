"""Word-level language modelling: Penn Treebank, WikiText-2, or any folder of three splits.

Zaremba et al. (2014) and the TF PTB tutorial (../shared/seeds/ptb-zaremba-tutorial.txt) train with SGD at
lr 1.0 on the loss *summed* over the T steps of a window and averaged over the batch, clipping that
gradient's global norm at ``max_grad_norm``. rnnlab minimises the loss averaged over all tokens, whose
gradient is exactly 1/T of theirs; so lr = T x 1.0 and clip = max_grad_norm / T give the very same
updates (clipping scales both sides of the comparison by 1/T). That is pytorch/examples' lr 20, clip 0.25.

Validation during training streams ``eval_batch_size`` rows (fast); ``rnnlab evaluate`` scores a split as
the tutorial does its test set, one row with the state carried through the whole text, in windows of
``seq_len`` (equal to the tutorial's token-by-token loop: tests/test_wordlm.py).
"""

from dataclasses import dataclass
import logging
import math
import os

from ..data import download
from ..data.text import Vocab
from ..data.words import load_corpus
from ..errors import UserError
from ..config import MAX_COUNT, at_least, at_most
from .base import Preset
from .lm import LMConfig, LMTask, bits, eval_stream, evaluate_stream

log = logging.getLogger(__name__)

WORD_CORPORA = ("ptb", "wikitext-2")  # the datasets of download.DATASETS laid out as three word splits


@dataclass
class Config(LMConfig):
    data: str = "ptb"               # a folder with the three splits, or a dataset name (ptb, wikitext-2)
    eval_batch_size: int = 10       # rows of the streaming validation during training (pytorch/examples: 10)
    preview_length: int = 30        # words sampled at each evaluation

    def validate(self) -> None:
        super().validate()
        at_least(self, 1, "eval_batch_size")
        at_most(self, MAX_COUNT, "eval_batch_size")


def _zaremba(hidden, seq_len, init_scale, max_grad_norm, max_epoch, epochs, keep_prob, lr_decay) -> Config:
    """A configuration of Zaremba et al. 2014 / the TF tutorial, in rnnlab's per-token-loss units."""
    return Config(
        cell="lstm", hidden_size=hidden, embedding_size=hidden, num_layers=2, seq_len=seq_len, batch_size=20,
        dropout=1 - keep_prob, init="uniform", init_scale=init_scale, forget_bias=0.0,
        optimizer="sgd", lr=1.0 * seq_len, clip=max_grad_norm / seq_len, lr_schedule="step",
        decay_after=max_epoch, lr_decay=lr_decay, epochs=epochs, eval_interval=0, log_interval=200,
    )


_ZAREMBA = "Zaremba et al. 2014, Table 1 / the TF PTB tutorial's"
PRESETS = {
    "zaremba-small": Preset(_zaremba(200, 20, 0.1, 5, 4, 13, 1.0, 0.5),
                            f"{_ZAREMBA} SmallConfig: 2x200 LSTM, no dropout"),
    "zaremba-medium": Preset(_zaremba(650, 35, 0.05, 5, 6, 39, 0.5, 0.8),
                             f"{_ZAREMBA} MediumConfig: 2x650, dropout 0.5"),
    "zaremba-large": Preset(_zaremba(1500, 35, 0.04, 10, 14, 55, 0.35, 1 / 1.15),
                            f"{_ZAREMBA} LargeConfig: 2x1500, dropout 0.65"),
    # Beyond Zaremba: the medium model with tied input/output embeddings and pytorch/examples' schedule
    # (lr 20, divided by 4 whenever validation stops improving), 40 epochs. pytorch/examples reports
    # test ppl 75.96 for this configuration on PTB; target <= 76.
    "medium-tied": Preset(Config(
        cell="lstm", hidden_size=650, embedding_size=650, num_layers=2, seq_len=35, batch_size=20,
        dropout=0.5, tied=True, init="uniform", init_scale=0.1, forget_bias=0.0, optimizer="sgd", lr=20.0,
        clip=0.25, lr_schedule="plateau", lr_decay=0.25, plateau_patience=0, epochs=40, eval_interval=0,
        log_interval=200,
    ), "pytorch/examples word_language_model --tied --emsize 650 --nhid 650 --dropout 0.5 --epochs 40 (test ppl 75.96)"),
}


def resolve_data(data: str) -> str:
    """A folder path as it is; a dataset name -> its cache folder, downloaded first if need be."""
    if os.path.isdir(data) or data not in download.DATASETS:
        return data
    if data not in WORD_CORPORA:
        raise UserError(f"{data} is a text for a character model, not a word corpus of train/valid/test files; "
                        f"train on it with rnnlab train charlm (builtin:{data} is built in), or give wordlm one of "
                        f"{', '.join(WORD_CORPORA)} or a folder")
    if not download.is_downloaded(data):
        log.info("dataset %s is not in the cache %s yet: downloading it", data, download.cache_dir())
        download.download(data)
    return download.dataset_dir(data)


class WordLM(LMTask):
    """Next-word prediction on a corpus of three splits (module docstring)."""

    name = "wordlm"
    Config = Config
    presets = PRESETS
    default_preset = "zaremba-small"

    @classmethod
    def loss_unit(cls, vocab) -> str:
        return "nats per word"

    def __init__(self, config: Config, vocab: Vocab | None = None):
        folder = resolve_data(config.data)
        vocab, self.ids = load_corpus(folder, vocab)
        super().__init__(config, vocab, self.ids["train"])
        self.valid = eval_stream(self.ids["valid"], config, rows=config.eval_batch_size)
        log.info("data %s: %s / %s / %s tokens (train / valid / test, with <eos>), vocabulary %s words",
                 folder, *(f"{self.ids[s].numel():,}" for s in ("train", "valid", "test")), f"{len(vocab):,}")

    @classmethod
    def metrics(cls, result: dict) -> dict:
        return {"loss": result["loss"], "perplexity": math.exp(result["loss"]), "bits_per_word": bits(result["loss"]),
                "tokens": result["tokens"]}

    @classmethod
    def evaluate_run(cls, run, data: str | None = None, split: str = "valid") -> dict:
        """Score a split of the run's corpus (or of ``data``) with one row, state carried through the whole text."""
        if split not in ("valid", "test"):
            raise UserError(f"--split {split}: a wordlm run scores its corpus' valid or test split")
        folder = resolve_data(data or run.config.data)
        _, ids = load_corpus(folder, run.vocab, (split,))
        stream = eval_stream(ids[split], run.config, rows=1)
        return {**cls.metrics(evaluate_stream(run.model, stream)), "split": split, "data": folder}

    @classmethod
    def describe(cls, result: dict, vocab: Vocab) -> str:
        return (f"{result['data']} ({result['split']}): perplexity {result['perplexity']:.2f}, "
                f"{result['loss']:.4f} nats/word over {result['tokens']:,} tokens")
