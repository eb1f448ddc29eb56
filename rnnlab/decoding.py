"""Decoding a sequence-to-sequence model (``encoder_decoder.Seq2Seq``): greedy, and beam search with a
length penalty, both capped at ``max_length`` tokens.

Beam search keeps the ``width`` likeliest unfinished hypotheses; a hypothesis that emits ``<eos>`` is
finished, scored by its log-probability over Wu et al. 2016's (GNMT) length penalty

    lp(Y) = ((5 + |Y|) / 6) ** alpha          alpha 0: the plain log-probability (no penalty)

and the search stops when the best unfinished hypothesis cannot beat the best finished one any more (its
log-probability only falls as it grows; with alpha > 0 the bound uses the longest length left), or at
``max_length``. At width 1 it is greedy decoding exactly.
"""

from dataclasses import dataclass

import torch

LENGTH_PENALTY_BASE = 5.0  # Wu et al. 2016, eq. 14: lp(Y) = (5 + |Y|)^alpha / (5 + 1)^alpha


@dataclass(frozen=True)
class Hypothesis:
    """A decoded target: its ``tokens`` (without ``<bos>``, ``<eos>`` dropped), total log-probability
    (``<eos>``'s included), whether it ended with ``<eos>`` (else at the cap), and the attention weights of
    each step ``(T, S)``, ``<eos>``'s step included (None without attention)."""

    tokens: list
    logp: float
    finished: bool
    attention: torch.Tensor | None = None


def length_penalty(length: int, alpha: float) -> float:
    return ((LENGTH_PENALTY_BASE + length) / (LENGTH_PENALTY_BASE + 1)) ** alpha


@torch.inference_mode()
def greedy(model, source: torch.Tensor, lengths: torch.Tensor, bos: int, eos: int, max_length: int,
           pad: int = 0) -> list:
    """The likeliest token at each step for every row of ``source`` ``(B, S)``: a :class:`Hypothesis` each
    (``<pad>`` and ``<bos>`` are never emitted)."""
    model.eval()
    memory, mask, state = model.encode(source, lengths)
    tokens = torch.full((len(source),), bos, dtype=torch.long, device=source.device)
    out, logps, attention = [], torch.zeros(len(source), dtype=torch.float64), []
    done = torch.zeros(len(source), dtype=torch.bool, device=source.device)
    for _ in range(max_length):
        logp, weights, state = model.step(tokens, memory, mask, state)
        logp = _never(logp, pad, bos)
        tokens = logp.argmax(-1)
        logps += torch.where(done, 0.0, logp.gather(1, tokens[:, None])[:, 0].double()).cpu()
        out.append(tokens)
        attention.append(weights)
        done = done | (tokens == eos)
        if bool(done.all()):
            break
    steps = torch.stack(out, 1).tolist()
    found = []
    for row, seq in enumerate(steps):
        length = seq.index(eos) if eos in seq else len(seq)
        weights = torch.stack([w[row, : int(lengths[row])] for w in attention[: length + 1]]) \
            if attention[0] is not None else None
        found.append(Hypothesis(seq[:length], float(logps[row]), eos in seq, weights))
    return found


@torch.inference_mode()
def beam_search(model, source: torch.Tensor, length: int, bos: int, eos: int, max_length: int, width: int = 4,
                alpha: float = 0.0, pad: int = 0) -> Hypothesis:
    """The best :class:`Hypothesis` for one source ``(S,)`` of ``length`` tokens (module docstring)."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    model.eval()
    memory, mask, state = model.encode(source[None, :length], torch.tensor([length], device=source.device))
    # each hypothesis: (tokens, log-probability, attention rows); the state rows follow the same order
    beams, finished = [([], 0.0, [])], []
    for step in range(max_length):
        tokens = torch.tensor([b[0][-1] if b[0] else bos for b in beams], device=source.device)
        rows = len(beams)
        logp, weights, state = model.step(tokens, memory.expand(rows, -1, -1), mask.expand(rows, -1), state)
        logp = _never(logp, pad, bos)
        total = torch.tensor([b[1] for b in beams], dtype=torch.float64)[:, None] + logp.double().cpu()
        flat = total.flatten()
        best = flat.topk(min(width, flat.numel())).indices.tolist()
        kept, parents = [], []
        for index in (i for i in best if flat[i] > float("-inf")):
            parent, token = divmod(index, logp.size(1))
            seq, _, rows_so_far = beams[parent]
            grown = (seq + [token], float(flat[index]), rows_so_far + ([weights[parent]] if weights is not None else []))
            if token == eos:
                finished.append(grown)
            else:
                kept.append(grown)
                parents.append(parent)
        if not kept or (finished and _best(finished, alpha) >= _bound(kept, max_length, alpha)):
            break
        beams = kept
        index = torch.tensor(parents, device=source.device)
        state = tuple(s[:, index] for s in state) if isinstance(state, tuple) else state[:, index]
    else:  # the cap: an unfinished hypothesis competes with the finished ones, as greedy's would
        finished += [(seq + [None], logp, rows) for seq, logp, rows in kept]
    seq, logp_total, rows = max(finished, key=lambda h: _score(h, alpha))
    return Hypothesis(seq[:-1], logp_total, seq[-1] is not None, torch.stack(rows) if rows else None)


def _never(logp: torch.Tensor, *tokens: int) -> torch.Tensor:
    """``logp`` with ``tokens`` made impossible."""
    logp = logp.clone()
    logp[:, list(tokens)] = float("-inf")
    return logp


def _score(finished: tuple, alpha: float) -> float:
    """A finished hypothesis's score: its log-probability over the penalty of its length (its last entry,
    ``<eos>`` or the cap's None, not counted)."""
    return finished[1] / length_penalty(len(finished[0]) - 1, alpha)


def _best(finished: list, alpha: float) -> float:
    return max(_score(h, alpha) for h in finished)


def _bound(kept: list, max_length: int, alpha: float) -> float:
    """The most any of the unfinished hypotheses ``kept`` can still score: their log-probabilities only fall
    as they grow, and a longer one is divided by a larger penalty (at most that of ``max_length``)."""
    best = max(h[1] for h in kept)
    return best / length_penalty(max_length, alpha) if alpha > 0 else best
