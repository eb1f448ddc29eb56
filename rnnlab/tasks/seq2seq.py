"""Sequence to sequence (many-to-many): an encoder-decoder with attention (``encoder_decoder.py``) on toy
tasks generated from the seed (copy, reverse, sort, addition: Zaremba & Sutskever 2014's "Learning to
Execute", with their curricula) or on tab-separated pairs from a file (``--data FILE``, ``data/pairs.py``;
eng-fra: Tatoeba's English-French pairs, CC BY 2.0 FR).

Toy tasks draw fresh pairs at every step (a pure function of the seed and the step, so a resumed run sees
the same batches) and validate on a fixed set at the full difficulty. Pairs from a file are split by source
sentence (no validation source is seen in training). Source and target share one vocabulary (the run's
``vocab.json``; separate embeddings). The loss is cross-entropy per target token, ``<eos>`` included.

Metrics: sequence accuracy (the output's tokens equal a reference's) and token accuracy (the share of the
first reference's tokens, ``<eos>`` included, the output has at the same position); for word-level data,
corpus BLEU (sacrebleu, on rnnlab's tokens) against every reference a source sentence has.

Models: ``model(source (B, S), state=(source lengths (B,), decoder inputs (B, T))) -> (logits (B, T, V),
attention (B, T, S) or None)``.
"""

from collections import defaultdict
from dataclasses import dataclass
import logging
import math

import numpy as np
import torch
from torch.nn import functional as F

from .. import decoding
from ..config import MAX_COUNT, MAX_LAYERS, MAX_WIDTH, TrainConfig, at_least, at_most, choose
from ..data import pairs as pairdata
from ..data.order import shuffled_batch
from ..data.text import Vocab
from ..distributed import SINGLE, World
from ..encoder_decoder import ATTENTION, CELLS, Seq2Seq
from ..errors import UserError
from .base import Preset, Task

log = logging.getLogger(__name__)

OUTPUT_CAP = (2, 10)  # an output stops at 2 x its source's tokens + 10: past any translation or toy answer
MAX_BEAM = 256


@dataclass
class Config(TrainConfig):
    data: str = ""                  # a file of SOURCE<TAB>TARGET lines; empty = the toy task
    toy: str = "reverse"            # without data: copy, reverse, sort or addition
    level: str = "char"             # tokens: char or word (words and punctuation, data/pairs.py)
    lower: bool = False             # lower-case the text first (a smaller vocabulary; outputs lose case)
    min_count: int = 1              # file data: tokens seen fewer times in training are <unk>
    valid_fraction: float = 0.1     # file data: share of source sentences held out, all their pairs with them
    min_length: int = 1             # copy, reverse, sort: symbols per sequence, from
    max_length: int = 20            # ... to (the 20 symbols)
    digits: int = 9                 # addition: digits of each number (Zaremba & Sutskever: 9)
    curriculum: str = "none"        # toy tasks: none, naive, mix or combined (Zaremba & Sutskever 2014, §4)
    valid_pairs: int = 1000         # toy tasks: the fixed validation set, at the full difficulty
    epoch_steps: int = 500          # toy tasks: steps that count as an epoch (their data never repeats)
    embedding_size: int = 64
    hidden_size: int = 128
    num_layers: int = 1
    cell: str = "lstm"              # lstm or gru
    bidirectional: bool = True      # the encoder reads the source both ways
    attention: str = "additive"     # additive (Bahdanau 2015), multiplicative (Luong 2015) or none (Sutskever 2014)
    reverse_source: bool = False    # feed the source reversed (Sutskever et al.'s trick for the fixed vector)
    dropout: float = 0.0
    beam: int = 1                   # evaluate and translate: beam width (1: greedy)
    length_penalty: float = 0.0     # the beam's alpha (Wu et al. 2016; 0: none)

    def validate(self) -> None:
        super().validate()
        choose(self.toy, tuple(pairdata.TOY_TASKS), "toy")
        choose(self.level, pairdata.LEVELS, "level")
        choose(self.curriculum, pairdata.STRATEGIES, "curriculum")
        choose(self.cell, tuple(CELLS), "cell")
        choose(self.attention, ATTENTION, "attention")
        at_least(self, 1, "min_count", "min_length", "max_length", "digits", "valid_pairs", "epoch_steps",
                 "embedding_size", "hidden_size", "num_layers", "beam")
        at_least(self, 0, "length_penalty")
        at_most(self, MAX_WIDTH, "embedding_size", "hidden_size")
        at_most(self, MAX_LAYERS, "num_layers")
        at_most(self, MAX_COUNT, "min_count", "max_length", "valid_pairs", "epoch_steps")
        at_most(self, 1000, "digits")
        at_most(self, MAX_BEAM, "beam")
        if self.min_length > self.max_length:
            raise UserError(f"min_length {self.min_length} is above max_length {self.max_length}")
        if not 0 < self.valid_fraction < 1:
            raise UserError(f"valid_fraction must be between 0 and 1, got {self.valid_fraction}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")


def _toy(toy: str, **keys) -> Config:
    return Config(**{"toy": toy, "optimizer": "adam", "lr": 2e-3, "batch_size": 64, "epochs": 10, "clip": 5.0,
                     "log_interval": 50, **keys})


PRESETS = {
    "reverse": Preset(_toy("reverse"), "reverse 1-20 of 20 symbols: a bidirectional LSTM encoder, additive attention"),
    "copy": Preset(_toy("copy"), "copy 1-20 of 20 symbols: as reverse"),
    "sort": Preset(_toy("sort"), "sort 1-20 of 20 symbols: as reverse"),
    "addition": Preset(_toy("addition", digits=9, curriculum="combined", hidden_size=256, epochs=20),
                       "two 9-digit numbers, Zaremba & Sutskever 2014's combined curriculum; additive attention"),
    "eng-fra": Preset(Config(level="word", data="", embedding_size=128, hidden_size=256, dropout=0.2, optimizer="adam",
                             lr=1e-3, batch_size=32, epochs=30, beam=5, length_penalty=0.6, log_interval=50),
                      "Tatoeba English-French (--data .../eng-fra.txt): words, 256-unit LSTMs, additive attention, "
                      "beam 5 with GNMT's length penalty 0.6"),
}


class Seq2SeqTask(Task):
    """Pairs of sequences, an encoder-decoder, token cross-entropy (module docstring)."""

    name = "seq2seq"
    Config = Config
    presets = PRESETS
    default_preset = "reverse"
    generates = "translation"
    model_signature = ("model(source (B, S), state=(source lengths (B,), decoder inputs (B, T))) -> "
                       "(logits (B, T, V), attention (B, T, S) or None)")
    loss_is_token_mean = True

    @classmethod
    def loss_unit(cls, vocab) -> str:
        return "nats per target token"

    @classmethod
    def build_model(cls, config: Config, vocab: Vocab) -> Seq2Seq:
        return Seq2Seq(len(vocab), len(vocab), config.embedding_size, config.hidden_size, config.num_layers,
                       config.cell, config.bidirectional, config.attention, config.dropout, pairdata.PAD_ID)

    def __init__(self, config: Config, vocab: Vocab | None = None):
        self.config = config
        if config.data:
            every = pairdata.read_pairs(config.data)
            train, self.valid = pairdata.split_by_source(every, config.valid_fraction, config.seed)
            self.vocab = vocab or pairdata.pair_vocab([t for p in train for t in (p.source, p.target)], config.level,
                                                      config.min_count, config.lower)
            self.train = encode_pairs(train, config, self.vocab)
            self.steps_per_epoch = math.ceil(len(train) / config.batch_size)
            source = f"{config.data}: {len(train):,} training and {len(self.valid):,} validation pairs"
        else:
            if config.level != "char":  # the eng-fra preset without its --data
                raise UserError(f"level={config.level} reads a pairs file: give --data FILE (eng-fra: "
                                f"../shared/data/translation/eng-fra.txt); the toy tasks are char-level")
            self.valid = toy_held_out(config)
            alphabet = "0123456789" + pairdata.PLUS if config.toy == "addition" else pairdata.ALPHABET
            self.vocab = vocab or pairdata.pair_vocab([alphabet], "char")
            self.train = None
            self.steps_per_epoch = config.epoch_steps
            source = f"toy task {config.toy} ({self._describe_sizes()}), curriculum {config.curriculum}"
        log.info("data %s; a vocabulary of %d tokens", source, len(self.vocab))

    def _describe_sizes(self) -> str:
        c = self.config
        return f"two {c.digits}-digit numbers" if c.toy == "addition" else f"{c.min_length}-{c.max_length} symbols"

    def train_batch(self, step: int):
        c = self.config
        if self.train is not None:
            picked = shuffled_batch(step, len(self.train), c.batch_size, c.seed, self.train.source_lengths)
            return as_batch(self.train.batch(torch.as_tensor(picked))), True
        rng = np.random.default_rng([c.seed, 0, step])
        pairs = pairdata.curriculum_pairs(c.toy, c.batch_size, rng, c.curriculum, step, c.seed,
                                          start=step * c.batch_size, **toy_sizes(c))
        return as_batch(encode_pairs(pairs, c, self.vocab)), True

    def loss(self, model, batch, state):
        return token_loss(model, batch)

    def evaluate(self, model, world: World = SINGLE) -> dict:
        return score(model, self.config, self.vocab, self.valid, 1, 0.0, world)

    @classmethod
    def evaluate_run(cls, run, data: str | None = None, split: str = "valid") -> dict:
        config = run.config
        toy = data is None and not config.data
        if split not in (("valid", "test") if toy else ("valid",)):
            raise UserError(f"--split must be valid (its held-out pairs){' or test' if toy else ''} for a seq2seq "
                            f"run {'of a toy task' if toy else 'of pairs from a file'}, got {split}")
        if toy:
            pairs = toy_held_out(config, split)
        else:
            every = pairdata.read_pairs(data or config.data)
            pairs = every if data else pairdata.split_by_source(every, config.valid_fraction, config.seed)[1]
        result = score(run.model, config, run.vocab, pairs, config.beam, config.length_penalty, by_length=True)
        return {**result, "data": data or config.data or f"toy {config.toy} ({split})", "beam": config.beam}

    @classmethod
    def describe(cls, result: dict, vocab) -> str:
        line = (f"{result['data']}: sequence accuracy {100 * result['sequence_accuracy']:.2f} %, token accuracy "
                f"{100 * result['token_accuracy']:.2f} %")
        if "bleu" in result:
            line += f", BLEU {result['bleu']:.2f}"
        return line + f" (beam {result['beam']}) over {result['sources']:,} sources; loss {result['loss']:.4f}"

    @classmethod
    def translate(cls, model, config: Config, vocab: Vocab, texts: list, beam: int, alpha: float) -> list:
        """``texts`` decoded by a beam of ``beam`` (1: greedy) at length penalty ``alpha``: a
        ``decoding.Hypothesis`` each, its ``tokens`` as text in ``text``."""
        encoded = encode_pairs([pairdata.Pair(text, "") for text in texts], config, vocab)
        return decode_all(model, encoded, config, vocab, beam, alpha)


    @classmethod
    def source_tokens(cls, config: Config, text: str) -> list:
        """The tokens the encoder reads for ``text``, ``<eos>`` included (reversed, if the run reverses)."""
        tokens = pairdata.tokenize(reverse_text(text, config.level) if config.reverse_source else text, config.level,
                                   config.lower)
        return tokens + [pairdata.EOS]

    @classmethod
    def target_tokens(cls, vocab: Vocab, hypothesis) -> list:
        """The tokens of a decoded ``hypothesis``, ``<eos>`` included when it finished."""
        return [vocab.tokens[t] for t in hypothesis.tokens] + ([pairdata.EOS] if hypothesis.finished else [])


def toy_sizes(config: Config) -> dict:
    """The toy task's own size keywords (data/pairs.py's generators)."""
    c = config
    return {"digits": c.digits} if c.toy == "addition" else {"min_length": c.min_length, "max_length": c.max_length}


TEST_PAIRS = 10_000  # a toy task's test set: a standard error of 0.1 % at 99 % sequence accuracy


def toy_held_out(config: Config, split: str = "valid") -> list:
    """The toy task's fixed pairs of ``split``, at the full difficulty: ``valid_pairs`` (valid) or TEST_PAIRS
    (test), each split from its own stream of the seed (training draws from a third)."""
    count, stream = (config.valid_pairs, 1) if split == "valid" else (TEST_PAIRS, 2)
    return pairdata.toy_pairs(config.toy, count, np.random.default_rng([config.seed, stream]), **toy_sizes(config))


def encode_pairs(pairs: list, config: Config, vocab: Vocab) -> pairdata.EncodedPairs:
    """``pairs`` as padded ids, the sources reversed if the run reverses them."""
    if config.reverse_source:
        pairs = [pairdata.Pair(reverse_text(p.source, config.level), p.target, p.extra) for p in pairs]
    return pairdata.encode(pairs, vocab, vocab, config.level, config.lower)


def as_batch(encoded: pairdata.EncodedPairs) -> dict:
    """A batch as the loop moves and splits it: a dict of its tensors (rows first)."""
    return {name: getattr(encoded, name) for name in ("sources", "source_lengths", "decoder_inputs",
                                                      "decoder_targets", "target_lengths")}


def token_loss(model, batch: dict) -> tuple:
    """``(mean cross-entropy per target token, None, tokens)`` of an :func:`as_batch` batch. A process's block
    of a batch may be padded past its own longest rows: harmless, padding is masked."""
    logits, _ = model(batch["sources"], (batch["source_lengths"], batch["decoder_inputs"]))
    targets = batch["decoder_targets"]
    total = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=pairdata.PAD_ID,
                            reduction="sum")
    tokens = int((targets != pairdata.PAD_ID).sum())
    return total / tokens, None, tokens


def reverse_text(text: str, level: str) -> str:
    """``text`` with its tokens in reverse order (Sutskever et al. 2014's reversed source)."""
    return pairdata.detokenize(pairdata.tokenize(text, level)[::-1], level)


def decode_all(model, encoded: pairdata.EncodedPairs, config: Config, vocab: Vocab, beam: int, alpha: float) -> list:
    """Every row of ``encoded`` decoded, capped at OUTPUT_CAP: ``(text, Hypothesis)`` pairs."""
    device = next(model.parameters()).device
    sources, lengths = encoded.sources.to(device), encoded.source_lengths.to(device)
    cap = OUTPUT_CAP[0] * int(lengths.max()) + OUTPUT_CAP[1]
    if beam == 1 and alpha == 0:
        found = decoding.greedy(model, sources, lengths, pairdata.BOS_ID, pairdata.EOS_ID, cap)
    else:
        found = [decoding.beam_search(model, sources[i], int(lengths[i]), pairdata.BOS_ID, pairdata.EOS_ID,
                                      OUTPUT_CAP[0] * int(lengths[i]) + OUTPUT_CAP[1], beam, alpha)
                 for i in range(len(sources))]
    return [(pairdata.decode(h.tokens, vocab, config.level), h) for h in found]


def score(model, config: Config, vocab: Vocab, pairs: list, beam: int, alpha: float, world: World = SINGLE,
          by_length: bool = False) -> dict:
    """Loss, sequence and token accuracy (and BLEU for words) of ``pairs``, decoded as given, and with
    ``by_length`` the sequence accuracy of each source length (in tokens). In a job of several processes each
    scores its part of the sources and their :func:`part_sums` are added up: every figure, BLEU included, is
    the one a single process gives."""
    references = defaultdict(list)
    for p in pairs:
        references[p.source].append(p.target)
    sources = list(references)
    longest = max(len(pairdata.tokenize(s, config.level, config.lower)) for s in sources)
    mine = [sources[i] for i in world.part(len(sources))]
    sums = {name: world.sum(value) for name, value in
            part_sums(model, config, vocab, {s: references[s] for s in mine}, beam, alpha, longest).items()}
    return summary(sums, config, len(sources), len(pairs), by_length)


@torch.inference_mode()
def part_sums(model, config: Config, vocab: Vocab, references: dict, beam: int, alpha: float, longest: int) -> dict:
    """What :func:`summary` needs of the sources ``references`` holds (each with its targets), as float64
    tensors that add up over parts: ``counts`` (nats, tokens, exact, matched, reference tokens), ``lengths``
    (exact and sources per source length, 0 to ``longest``) and, for words, ``bleu`` (:func:`bleu_statistics`)."""
    model.eval()
    counts, lengths, hypotheses = np.zeros(5), np.zeros((2, longest + 1)), []
    firsts = [pairdata.Pair(s, targets[0]) for s, targets in references.items()]
    device = next(model.parameters()).device
    for start in range(0, len(firsts), config.batch_size):
        chunk = firsts[start : start + config.batch_size]
        encoded = encode_pairs(chunk, config, vocab)
        batch = {k: v.to(device) for k, v in as_batch(encoded).items()}
        loss, _, count = token_loss(model, batch)
        counts[:2] += float(loss) * count, count
        for (text, hypothesis), pair, row in zip(decode_all(model, encoded, config, vocab, beam, alpha), chunk,
                                                 encoded.decoder_targets.tolist()):
            said = [vocab.tokens[t] for t in hypothesis.tokens]
            hypotheses.append(" ".join(said))
            right = any(said == as_tokens(ref, config) for ref in references[pair.source])
            length = len(pairdata.tokenize(pair.source, config.level, config.lower))
            lengths[:, length] += right, 1
            wanted = [t for t in row if t != pairdata.PAD_ID]
            got = hypothesis.tokens + ([pairdata.EOS_ID] if hypothesis.finished else [])
            counts[2:] += right, sum(a == b for a, b in zip(wanted, got)), len(wanted)
    sums = {"counts": counts, "lengths": lengths}
    if config.level == "word":
        sums["bleu"] = bleu_statistics(hypotheses, [[" ".join(as_tokens(r, config)) for r in targets]
                                                    for targets in references.values()])
    return {name: torch.tensor(value, dtype=torch.float64) for name, value in sums.items()}


def summary(sums: dict, config: Config, sources: int, pairs: int, by_length: bool) -> dict:
    """The figures :func:`score` reports, from the :func:`part_sums` of every part."""
    nats, tokens, exact, matched, reference_tokens = sums["counts"].tolist()
    result = {"loss": nats / tokens, "sequence_accuracy": exact / sources, "token_accuracy": matched / reference_tokens,
              "sources": sources, "pairs": pairs}
    if by_length:
        result["accuracy_by_length"] = {n: right / count for n, (right, count) in enumerate(sums["lengths"].T.tolist())
                                        if count}
    if config.level == "word":
        result["bleu"] = bleu_from(sums["bleu"].tolist())
    return result


def as_tokens(text: str, config: Config) -> list:
    """A reference as the tokens the model reads and writes (``<unk>`` for none: a reference keeps its words)."""
    return pairdata.tokenize(text, config.level, config.lower)


BLEU_ORDER = 4  # sacrebleu's default n-gram order


def bleu_statistics(hypotheses: list, references: list) -> list:
    """Corpus BLEU's sufficient statistics (sacrebleu) of ``hypotheses`` against every reference of each
    source, both as rnnlab's word tokens joined by spaces (so ``tokenize="none"``: the tokens are scored as the
    model sees them, which is not the detokenised SacreBLEU of the WMT papers): the matched and the total
    n-grams of each order, the output length and the closest reference length, summed over the sentences,
    so that parts add up to the whole. A source with fewer references than the most has its missing ones
    left out."""
    import sacrebleu

    if not hypotheses:
        return [0] * (2 * BLEU_ORDER + 2)
    most = max(len(r) for r in references)
    streams = [[r[k] if k < len(r) else None for r in references] for k in range(most)]
    scored = sacrebleu.corpus_bleu(hypotheses, streams, tokenize="none", force=True)  # force: tokens, knowingly
    return [*scored.counts, *scored.totals, scored.sys_len, scored.ref_len]


def bleu_from(statistics: list) -> float:
    """Corpus BLEU from :func:`bleu_statistics` (or their sum over parts), smoothed as ``corpus_bleu``."""
    from sacrebleu.metrics import BLEU

    n = BLEU_ORDER
    counts, totals = [int(v) for v in statistics[:n]], [int(v) for v in statistics[n : 2 * n]]
    sys_len, ref_len = (int(v) for v in statistics[2 * n :])
    return float(BLEU.compute_bleu(counts, totals, sys_len, ref_len, smooth_method="exp").score)


def bleu(hypotheses: list, references: list) -> float:
    """Corpus BLEU of ``hypotheses`` against every reference of each source (:func:`bleu_statistics`)."""
    return bleu_from(bleu_statistics(hypotheses, references))
