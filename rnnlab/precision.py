"""The arithmetic precision of training: ``fp32``, or ``bf16`` under ``torch.autocast``.

bf16 keeps fp32's exponent range with an 8-bit mantissa, so nothing overflows and no loss scaling is needed;
what it loses is precision, so only the matrix products run in it (autocast's choice, on the CPU as on CUDA):
the weights, their gradients, the optimiser's state, the loss, the carried recurrent state and every
checkpoint stay fp32. On a 2-core VM with AVX-512 BF16 a bf16 matmul ran at about 4x fp32;
benchmarks/results.md has what that makes of each preset.

Where bf16's precision would hurt, the model computes in fp32 even under autocast: the mixture density
(``mixture.split_params``), whose log-sigmas and correlations decide a likelihood in nats per line; the
window's positions kappa (a sum over hundreds of steps, ``attention.py``). Evaluation and sampling run in fp32.
"""

from contextlib import nullcontext

import torch

from .errors import UserError

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse ``bf16`` on a device that has no fast bf16 arithmetic. On such a CPU autocast's matmuls run
    emulated, slower than fp32, and oneDNN has no bf16 LSTM at all (measured on an AVX2 EPYC, 2026-12-02)."""
    if precision != "bf16":
        return
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise UserError(f"precision bf16 needs a GPU with bf16 arithmetic (Ampere or newer); "
                        f"{torch.cuda.get_device_name(device)} has none: use --set precision=fp32")
    if device.type == "cpu" and not cpu_has_bf16():
        raise UserError("precision bf16 needs a CPU with bf16 instructions (AVX-512 BF16, AMX or Arm's BF16); this one "
                        "has none (torch's LSTM does not run in bf16 there, the rest runs slower than fp32): use "
                        "--set precision=fp32")


def cpu_has_bf16() -> bool:
    """Whether oneDNN finds bf16 instructions on this CPU (AVX-512 BF16 or AMX on x86; BF16 on Arm)."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast(precision: str, device: torch.device):
    """The context a training step's forward pass and loss run in: autocast to bf16, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
