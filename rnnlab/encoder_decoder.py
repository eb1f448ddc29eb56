"""Sequence to sequence: an encoder reads the source, a decoder writes the target, looking back at the
source through attention (or, as the baseline, through a single vector).

::

    source   x_1 .. x_S  --embed--> encoder (uni- or bidirectional LSTM/GRU stack) --> H (B, S, E)
                                                        |
                                      start = tanh(W [h->_S ; h<-_1])   one vector per decoder layer
                                                        v
    target   <bos> y_1 .. y_T-1 --embed--> decoder (LSTM/GRU stack, from start) --> s_t (B, T, D)
                                                        |
    attention   a_t = softmax_j score(s_t, H_j) over the source's real positions (padding: weight 0)
                c_t = sum_j a_t,j H_j;   h~_t = tanh(W_c [c_t ; s_t]);   logits_t = W_o h~_t

Attention scores (Luong, Pham & Manning 2015, §3.1): ``"additive"`` is Bahdanau, Cho & Bengio 2015's
``v^T tanh(W_s s + W_h h)`` (Luong's "concat"), ``"multiplicative"`` is Luong's "general" ``s^T W h``;
``"none"`` drops the context (h~_t = s_t): Sutskever, Vinyals & Le 2014's fixed vector, whose only view of
the source is the decoder's starting state (the task feeds it the source reversed, as they did).

Two documented deviations, both so that a padded position never changes anything and training runs the
decoder over the whole target at once (one fused kernel): the attention is Luong's without input feeding
(the context does not enter the next step's input), and the decoder starts from a projection of the
encoder's last forward output and first backward output (Bahdanau et al.'s A.2.2 uses the backward one)
rather than from the encoder's final (h, c), which torch's fused kernels give only at the padded end.
"""

import torch
from torch import nn

from . import bidirectional

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
ATTENTION = ("additive", "multiplicative", "none")


class Seq2Seq(nn.Module):
    """``model(source (B, S), state=(source lengths (B,), decoder inputs (B, T))) -> (logits (B, T, V_target),
    attention weights (B, T, S) or None)``: teacher forcing over the whole target; :meth:`encode` and
    :meth:`step` decode one token at a time (``decoding.py``)."""

    def __init__(self, source_vocab: int, target_vocab: int, embedding_size: int = 64, hidden_size: int = 128,
                 num_layers: int = 1, cell: str = "lstm", bidirectional_encoder: bool = True,
                 attention: str = "additive", dropout: float = 0.0, pad_id: int = 0):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}")
        if attention not in ATTENTION:
            raise ValueError(f"attention must be one of {', '.join(ATTENTION)}; got {attention!r}")
        self.cell, self.attention, self.pad_id = cell, attention, pad_id
        self.num_layers, self.hidden_size = num_layers, hidden_size
        self.source_embedding = nn.Embedding(source_vocab, embedding_size, padding_idx=pad_id)
        self.target_embedding = nn.Embedding(target_vocab, embedding_size, padding_idx=pad_id)
        layer = CELLS[cell]
        sizes = [embedding_size] + [hidden_size * (2 if bidirectional_encoder else 1)] * (num_layers - 1)
        self.forwards = nn.ModuleList(layer(size, hidden_size, batch_first=True) for size in sizes)
        self.backwards = nn.ModuleList(layer(size, hidden_size, batch_first=True) for size in sizes) \
            if bidirectional_encoder else None
        encoded = hidden_size * (2 if bidirectional_encoder else 1)
        self.start = nn.Linear(encoded, num_layers * hidden_size * (2 if cell == "lstm" else 1))
        self.decoder = layer(embedding_size, hidden_size, num_layers, batch_first=True,
                             dropout=dropout if num_layers > 1 else 0.0)
        if attention == "additive":
            self.query = nn.Linear(hidden_size, hidden_size, bias=False)
            self.keys = nn.Linear(encoded, hidden_size)
            self.energy = nn.Linear(hidden_size, 1, bias=False)
        elif attention == "multiplicative":
            self.keys = nn.Linear(encoded, hidden_size, bias=False)
        self.combine = nn.Linear(encoded + hidden_size, hidden_size) if attention != "none" else None
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, target_vocab)

    # -- the encoder -------------------------------------------------------------------------------------

    def encode(self, source: torch.Tensor, lengths: torch.Tensor) -> tuple:
        """``(memory, mask, state)``: the encoder's outputs ``(B, S, E)``, the source's real positions
        ``(B, S)``, and the decoder's starting state (torch's layout, ``(h, c)`` for an LSTM)."""
        x = self.source_embedding(source)  # dropout comes before every layer
        if self.backwards is not None:
            memory = bidirectional.run(self.forwards, self.backwards, x, lengths, self.drop)
        else:
            memory = x
            for layer in self.forwards:
                memory, _ = layer(self.drop(memory))
        mask = torch.arange(source.size(1), device=source.device) < lengths[:, None]
        rows = torch.arange(len(source), device=source.device)
        last = memory[rows, lengths - 1, : self.hidden_size]  # the forward direction at the real end
        summary = torch.cat([last, memory[:, 0, self.hidden_size :]], dim=-1) if self.backwards is not None else last
        start = torch.tanh(self.start(summary)).view(len(source), -1, self.num_layers, self.hidden_size)
        start = start.permute(1, 2, 0, 3).contiguous()  # (1 or 2, L, B, H)
        state = (start[0], start[1]) if self.cell == "lstm" else start[0]
        return memory, mask, state

    # -- the decoder -------------------------------------------------------------------------------------

    def forward(self, source: torch.Tensor, state: tuple):
        lengths, inputs = state
        memory, mask, start = self.encode(source, lengths)
        logits, weights, _ = self.decode(inputs, memory, mask, start)
        return logits, weights

    def decode(self, inputs: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor, state):
        """Target tokens ``inputs`` ``(B, T)`` from decoder ``state`` -> logits ``(B, T, V)``, attention
        weights ``(B, T, S)`` (None without attention) and the state after them."""
        s, state = self.decoder(self.drop(self.target_embedding(inputs)), state)
        if self.attention == "none":
            return self.out(self.drop(s)), None, state
        weights = self.weights(s, memory, mask)
        context = weights @ memory
        attended = torch.tanh(self.combine(torch.cat([context, s], dim=-1)))
        return self.out(self.drop(attended)), weights, state

    def step(self, tokens: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor, state):
        """One token a row ``(B,)`` -> log-probabilities of the next ``(B, V)``, attention ``(B, S)`` or None,
        and the state."""
        logits, weights, state = self.decode(tokens[:, None], memory, mask, state)
        return logits[:, 0].log_softmax(-1), None if weights is None else weights[:, 0], state

    def weights(self, s: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(B, T, S)`` of decoder states ``s`` ``(B, T, H)`` over ``memory``'s real
        positions: a padded position gets exactly 0, and the weights of a row sum to 1."""
        if self.attention == "additive":
            scores = self.energy(torch.tanh(self.query(s)[:, :, None] + self.keys(memory)[:, None])).squeeze(-1)
        else:
            scores = s @ self.keys(memory).transpose(1, 2)
        return scores.masked_fill(~mask[:, None], float("-inf")).softmax(-1)
