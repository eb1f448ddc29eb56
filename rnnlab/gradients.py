"""Vanishing gradients, made visible: ``||dL/dh_t||`` for a loss at the last step, before and after training.

Backpropagation through time carries the gradient back one Jacobian per step:

    dL/dh_t = dL/dh_T · (∂h_T/∂h_{T-1}) · ... · (∂h_{t+1}/∂h_t)

For a tanh RNN each factor is ``diag(1 - h_j^2) W_hh``, of norm at most ``||W_hh||``, so once that is below
1 the product shrinks geometrically and the first steps get no learning signal (Bengio et al. 1994;
Pascanu et al. 2013, section 2). The LSTM's cell path multiplies by the forget gate instead, and the GRU's
by its update gate: both can sit near 1 and carry the gradient across the whole sequence (Hochreiter &
Schmidhuber 1997; Cho et al. 2014), if their biases start them there (``chrono_init``).

The difference shows with a loss that depends on the far past, so each cell is also trained on delayed
recall and measured again::

    t        1      2      3     ...     T
    cue      1      0      0     ...     0
    value   ±1    noise  noise   ...   noise      -> at step T, say which sign came at step 1

``measure`` is what ``rnnlab gradients`` calls; ``draw.plot_gradient_norms`` draws its result. On one CPU
core it takes a few seconds per cell at T = 100 (the GRU about twice the others).
"""

import copy
import logging

import torch
from torch import nn
from torch.nn import functional as F

from .recurrent import Recurrent
from .shapes import check_sequence

log = logging.getLogger(__name__)

INPUT_SIZE = 2  # channel 0: the value (the sign at step 1, noise after); channel 1: the cue, 1 at step 1 only
HIDDEN_SIZE = 32  # one bit needs few units; 32 trains in seconds on one CPU core at T = 100
NOISE_STD = 1.0  # distractors as large as the signal, so a cell must gate its input to keep the bit
TRAIN_STEPS = 300  # the LSTM and GRU reach 100 % at T = 40 and T = 100 for seeds 0-5; the RNN stays at chance
BATCH_SIZE = 64  # fresh random signs each step: 64 keeps the two classes near balance
LEARNING_RATE = 3e-3  # Adam; at 1e-2 the RNN now and then latches the bit anyway (2 seeds in 6 at T = 40)
CLIP_NORM = 1.0  # clip the global gradient norm: Pascanu et al. 2013's fix for exploding gradients
EVAL_BATCH = 1024  # fresh sequences for the accuracy: its standard error at chance is 1.6 points
MEASURE_BATCH = 256  # sequences averaged in each gradient-norm curve
SOLVED_ACCURACY = 0.9  # "learned it": chance is 0.5, and every cell that learns at all ends near 1.0


def recall_batch(batch_size: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A delayed-recall batch: inputs ``(B, T, 2)`` and targets ``(B,)``, 1.0 where the step-1 sign is +1."""
    if length < 1:
        raise ValueError(f"length must be at least 1; got {length}")
    bits = torch.randint(0, 2, (batch_size,), generator=generator)
    x = torch.zeros(batch_size, length, INPUT_SIZE)
    x[:, :, 0] = NOISE_STD * torch.randn(batch_size, length, generator=generator)
    x[:, 0, 0] = 2.0 * bits - 1.0
    x[:, 0, 1] = 1.0
    return x, bits.float()


def chrono_init(layer: Recurrent, length: int) -> None:
    """Chrono initialisation of a one-layer fused LSTM or GRU, in place (Tallec & Ollivier 2018, "Can
    recurrent neural networks warp time?").

    LSTM: forget-gate bias ``b_f ~ log U(1, length - 1)`` and input-gate bias ``-b_f``, so the units start
    with memory time scales spread between 1 and ``length`` steps. GRU: the same draw for the update gate
    ``z``, the keep gate of torch's ``h_t = (1 - z) n + z h_{t-1}``. With torch's init both gates sit near
    0.5, the gradient halves at every step, and 300 training steps never find the signal at T = 100
    (``measure(..., chrono=False)`` shows it). A vanilla RNN has no gate and is left as it is.
    """
    if layer.cell_type not in ("lstm", "gru"):
        return
    assert layer.fused and layer.num_layers == 1, "chrono_init expects a one-layer fused stack"
    h = layer.hidden_size
    rnn = layer.rnn
    with torch.no_grad():
        keep = torch.log(torch.empty(h).uniform_(1.0, max(length - 1.0, 1.0)))
        # Gate rows are LSTM i, f, g, o and GRU r, z, n: the keep gate (f or z) is the second block in both.
        rnn.bias_ih_l0[h : 2 * h] = keep
        rnn.bias_hh_l0[h : 2 * h] = 0.0
        if layer.cell_type == "lstm":
            rnn.bias_ih_l0[:h] = -keep
            rnn.bias_hh_l0[:h] = 0.0


class RecallModel(nn.Module):
    """A one-layer ``Recurrent`` and a linear read-out of its last hidden state: ``(B, T, 2)`` -> logits ``(B,)``.

    ``chrono=True`` sets the gate biases for sequences of ``length`` steps (``chrono_init``); otherwise
    every parameter keeps torch's init.
    """

    def __init__(self, cell: str, hidden_size: int = HIDDEN_SIZE, length: int | None = None, chrono: bool = False):
        super().__init__()
        self.layer = Recurrent(cell, INPUT_SIZE, hidden_size, num_layers=1, impl="torch")
        self.head = nn.Linear(hidden_size, 1)
        if chrono:
            if length is None:
                raise ValueError("chrono=True needs the sequence length the gates should span: pass length=T")
            chrono_init(self.layer, length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.layer(x)
        return self.head(outputs[:, -1]).squeeze(-1)

    def loss(self, h_last: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-sequence losses ``(B,)`` from the last hidden state ``(B, H)``: the loss both curves measure."""
        return F.binary_cross_entropy_with_logits(self.head(h_last).squeeze(-1), targets, reduction="none")


def gradient_norms(layer: nn.Module, x: torch.Tensor, last_step_loss) -> torch.Tensor:
    """``||dL/dh_t||_2`` for every step, averaged over the batch: a tensor ``(T,)``, index 0 for ``t = 1``.

    ``layer``: a ``Recurrent`` (anything with ``input_size`` and ``step(x_t, state) -> (h_t, state)``);
    ``x``: ``(B, T, input_size)``; ``last_step_loss``: maps ``h_T`` ``(B, H)`` to per-sequence losses ``(B,)``.

    The layer runs one step at a time so that every ``h_t`` is a node of the graph, and ``autograd.grad``
    returns the gradient at each. The losses are summed, not averaged: sequences do not interact, so row
    ``b`` of a gradient is ``dL_b/dh_t`` of sequence ``b`` alone, with no ``1/B`` factor. For the LSTM it
    is the gradient at ``h_t`` (``c_t`` is a separate node); with several layers, at the top layer's ``h_t``.
    """
    check_sequence(x, "gradient_norms input", layer.input_size)
    state = None
    hs = []
    for t in range(x.size(1)):
        h, state = layer.step(x[:, t], state)
        hs.append(h)
    loss = last_step_loss(hs[-1])
    if loss.shape != (x.size(0),):
        raise ValueError(f"last_step_loss must return one loss per sequence, shape ({x.size(0)},); got "
                         f"{tuple(loss.shape)}. Use reduction='none' and reduce over features only.")
    grads = torch.autograd.grad(loss.sum(), hs)
    return torch.stack([g.norm(dim=1).mean() for g in grads]).detach()


def recall_norms(model: RecallModel, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``gradient_norms`` of the recall loss ``(T,)``, computed in float64 on a copy of ``model``.

    Float64 because a vanilla RNN's gradient passes float32's smallest value (about 1e-45) within a few
    hundred steps, and an underflowed 0 is a hole in a log-scale plot.
    """
    double = copy.deepcopy(model).double().eval()
    return gradient_norms(double.layer, x.double(), lambda h: double.loss(h, targets.double()))


@torch.no_grad()
def accuracy(model: RecallModel, x: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of sequences whose step-1 sign the model recalls at step T; 0.5 is chance."""
    return ((model(x) > 0).float() == targets).float().mean().item()


def train_recall(model: RecallModel, length: int, steps: int, generator: torch.Generator) -> RecallModel:
    """Adam on ``steps`` fresh delayed-recall batches of ``length`` steps; trains ``model`` in place and returns it."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    model.train()
    for step in range(steps):
        x, targets = recall_batch(BATCH_SIZE, length, generator)
        loss = F.binary_cross_entropy_with_logits(model(x), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        if step % 100 == 0:
            log.debug("recall %s T=%d step %d loss %.4f", model.layer.cell_type, length, step, loss.item())
    return model.eval()


def measure(cell: str, length: int, seed: int = 0, steps: int = TRAIN_STEPS, hidden_size: int = HIDDEN_SIZE,
            chrono: bool = True) -> dict:
    """Gradient-norm curves of a ``cell`` ("rnn", "lstm", "gru") over ``length`` steps, untrained and trained.

    Returns a JSON-ready dict: ``untrained`` and ``trained``, lists of ``length`` floats
    (``||dL/dh_t||`` for t = 1..T, mean over ``MEASURE_BATCH`` sequences, the same ones before and after);
    ``untrained_ratio`` and ``trained_ratio``, ``||dL/dh_1|| / ||dL/dh_T||`` (far below 1: vanished);
    ``accuracy``, the trained model's recall on ``EVAL_BATCH`` fresh sequences (0.5 is chance) and
    ``learned`` (at least ``SOLVED_ACCURACY``); and the settings used. The same arguments give the same
    numbers on the same machine; the caller's global random state is left as it was.
    """
    if length < 1:
        raise ValueError(f"length must be at least 1; got {length}")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the weight init draws from the global generator
        torch.manual_seed(seed)
        model = RecallModel(cell, hidden_size, length, chrono)
    x, targets = recall_batch(MEASURE_BATCH, length, generator)
    untrained = recall_norms(model, x, targets)
    train_recall(model, length, steps, generator)
    trained = recall_norms(model, x, targets)
    acc = accuracy(model, *recall_batch(EVAL_BATCH, length, generator))
    log.info("%s T=%d: recall accuracy %.3f after %d steps; ||dL/dh_1||/||dL/dh_T|| %.2e untrained, %.2e trained",
             cell, length, acc, steps, untrained[0] / untrained[-1], trained[0] / trained[-1])
    return {
        "cell": cell,
        "length": length,
        "seed": seed,
        "steps": steps,
        "hidden_size": hidden_size,
        "chrono": chrono,
        "untrained": untrained.tolist(),
        "trained": trained.tolist(),
        "untrained_ratio": (untrained[0] / untrained[-1]).item(),
        "trained_ratio": (trained[0] / trained[-1]).item(),
        "accuracy": acc,
        "learned": acc >= SOLVED_ACCURACY,
    }
