"""Sampling from a next-token model: temperature, top-k, top-p (nucleus), priming, streaming.

Temperature 0 is greedy (argmax). Randomness comes only from the ``torch.Generator`` passed in, so the
same seed gives the same text and sampling never disturbs the global RNG (that training resumes from).
"""

from collections.abc import Iterator
import math

import torch

from .errors import UserError

MIN_TEMPERATURE = 1e-3


def check_options(temperature: float, top_k: int, top_p: float) -> None:
    if not 0 <= temperature < math.inf:  # NaN fails this too
        raise UserError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if 0 < temperature < MIN_TEMPERATURE:  # logits / temperature would overflow to inf
        raise UserError(f"temperature {temperature:g} is below {MIN_TEMPERATURE:g}, which is greedy in all but "
                        f"name; use temperature 0")
    if top_k < 0:
        raise UserError(f"top_k must be >= 0 (0 = no limit), got {top_k}")
    if not 0 < top_p <= 1:
        raise UserError(f"top_p must be in (0, 1] (1 = no limit), got {top_p}")


def next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per row of ``logits`` ``(B, V)``; returns ids ``(B,)``."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    if logits.dtype != torch.float32:
        logits = logits.float()
    if temperature != 1:
        logits = logits / temperature
    if 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p: drop a token when the mass before it already does.
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def generate(model: torch.nn.Module, prime: torch.Tensor, length: int, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None) -> Iterator[int]:
    """Feed ``prime`` (1-D ids, at least one), then yield ``length`` sampled ids one at a time.

    The prime goes through ``model(...)`` in one call; each new token through ``model.sampler``'s step.
    """
    if prime.numel() == 0:
        raise UserError("the prime is empty: give at least one token to start from")
    model.eval()
    with torch.inference_mode():
        device = next(model.parameters()).device
        logits, state = model(prime.view(1, -1).to(device), None)
        logits, step = logits[:, -1], model.sampler(state)
        for _ in range(length):
            token = next_token(logits, temperature, top_k, top_p, generator)
            yield int(token)
            logits = step(token)
