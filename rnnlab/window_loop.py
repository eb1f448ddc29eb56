"""The synthesis network's serial part, layer 1 and the window over a whole sequence, with its backward pass
written out (Graves 2013 §5, eqs. 46-51; the LSTM cell of §2, eqs. 7-11, in torch's gate order i, f, g, o).

Layer 1 needs the window of the step before and the window needs layer 1's output, so the two run step by
step, at batch 32 and 128 units a few dozen small operations a step: about half of a training step at the
bundled model's size. Here the forward loop runs without autograd's graph, one matmul a step for all of
layer 1's inputs, and the backward loop is BPTT through the cell and the window by hand, which takes 14 %
off the whole step against the recorded loop (benchmarks/results.md)::

    forward, t = 1 .. T                                   backward, t = T .. 1
    gates = [x_t, w_(t-1), h_(t-1)] W + b                 dw_t   = dw_t(out) + dgates_(t+1) W_w      (w feeds t+1)
    i, f, o = sigmoid, g = tanh (gates)                   dphi   = dphi_t(out) + [dw_t c_u]_u       (eq. 47)
    c_t = f c_(t-1) + i g;  h_t = o tanh(c_t)             G      = exp(alpha_hat - beta (kappa - u)^2) (eq. 46,
                                                                   saved; no gradient where floored, attention.py)
    alpha_hat, beta, dk = h_t W_win + b_win, exp, exp     dalpha_hat = sum_u dphi G
    kappa_t = kappa_(t-1) + dk                            dbeta_hat  = -beta sum_u dphi G (kappa - u)^2
    phi_t(u) = sum_k G_k(u)                               dkappa     = dkappa_(t+1) - 2 beta sum_u dphi G (kappa - u)
    w_t = sum_(u <= U) phi_t(u) c_u                       dh_t   = dh_t(out) + dgates_(t+1) W_hh + dhat W_win,
                                                                   clamped to +-clip (Graves' derivative clipping)
                                                          then the LSTM cell's own backward, to dgates_t

and each weight's gradient is summed step by step (``addmm_``). Everything a step saves stays a tensor of
its own: stacking them into a few (T, B, ...) blocks of 5-20 MB made the forward and backward passes fault
13,000 fresh pages a call (glibc hands such blocks back to the system when they are freed), which cost
more than the loop's arithmetic (measured). ``HandwritingSynthesizer`` uses it outside autocast (its bf16
path keeps the recorded loop, whose window stays in fp32); it is tested against that loop (outputs and
gradients) and by finite differences.
"""

import torch
from torch.nn import functional as F

from .attention import EXPONENT_FLOOR


class WindowLoop(torch.autograd.Function):
    """``apply(x (B, T, 3), onehot (B, U, A), h0, c0 (B, H), kappa0 (B, K), w0 (B, A), weight_ih (4H, 3 + A),
    weight_hh (4H, H), bias_ih, bias_hh (4H,), window_weight (3K, H), window_bias (3K,), clip)`` -> layer 1's
    outputs ``(B, T, H)``, the windows ``(B, T, A)``, phi ``(B, T, U + 1)`` and the last h, c, kappa, w
    (T >= 1). ``clip`` bounds the gradient reaching each h_t (0: none), as ``models._clamp_grad`` does."""

    @staticmethod
    def forward(ctx, x, onehot, h, c, kappa, w, weight_ih, weight_hh, bias_ih, bias_hh, window_weight,
                window_bias, clip: float):
        hidden, length, gaussians = h.size(1), onehot.size(1), kappa.size(1)
        weight = torch.cat([weight_ih, weight_hh], dim=1)  # (4H, 3 + A + H), for [x_t, w_(t-1), h_(t-1)]
        bias, weight_t, window_weight_t = bias_ih + bias_hh, weight.t(), window_weight.t()
        positions = torch.arange(1, length + 2, device=x.device, dtype=x.dtype)  # u = 1 .. U + 1
        steps, hs, ws, phis = [], [], [], []
        for x_t in x.unbind(1):
            inputs = torch.cat([x_t, w, h], dim=1)
            pre = torch.addmm(bias, inputs, weight_t)
            act = pre.sigmoid()  # i, f and o; the g block's sigmoid is unused
            i, f, o = act[:, :hidden], act[:, hidden : 2 * hidden], act[:, 3 * hidden :]
            g = pre[:, 2 * hidden : 3 * hidden].tanh()
            c_prev, c = c, torch.addcmul(f * c, i, g)
            tanh_c = c.tanh()
            h = o * tanh_c
            hats = torch.addmm(window_bias, h, window_weight_t)  # alpha_hat, beta_hat, kappa_hat (eq. 48)
            beta_step = hats[:, gaussians:].exp()  # beta and kappa's step (eqs. 50-51)
            kappa = kappa + beta_step[:, gaussians:]
            distance = kappa.unsqueeze(2) - positions  # kappa - u, (B, K, U + 1)
            squared = distance.square()
            exponent = hats[:, :gaussians, None] - beta_step[:, :gaussians, None] * squared
            live = exponent > EXPONENT_FLOOR  # where the floor does not bind, and the gradient flows
            gaussian = exponent.clamp_min_(EXPONENT_FLOOR).exp_()  # attention.window_weights
            phi = gaussian.sum(1)
            w = torch.bmm(phi[:, None, :length], onehot).squeeze(1)
            steps.append((inputs, act, g, c_prev, tanh_c, h, beta_step, distance, squared, gaussian, live, phi))
            hs.append(h)
            ws.append(w)
            phis.append(phi)
        ctx.save_for_backward(onehot, weight, window_weight)
        ctx.steps, ctx.clip = steps, clip
        return (torch.stack(hs, 1), torch.stack(ws, 1), torch.stack(phis, 1), h.clone(), c.clone(), kappa.clone(),
                w.clone())

    @staticmethod
    def backward(ctx, d_hs, d_ws, d_phis, d_h, d_c, d_kappa, d_w):
        onehot, weight, window_weight = ctx.saved_tensors
        steps, clip = ctx.steps, ctx.clip
        batch, hidden, letters = onehot.size(0), window_weight.size(1), onehot.size(2)
        gaussians = window_weight.size(0) // 3
        zeros = onehot.new_zeros
        d_h = d_h if d_h is not None else zeros(batch, hidden)
        d_c = d_c if d_c is not None else zeros(batch, hidden)
        d_kappa = d_kappa if d_kappa is not None else zeros(batch, gaussians)
        d_w = d_w if d_w is not None else zeros(batch, letters)
        d_weight = torch.zeros_like(weight)
        d_window_weight, d_window_bias = torch.zeros_like(window_weight), zeros(3 * gaussians)
        d_bias, d_x, d_onehot = zeros(4 * hidden), [], None
        if ctx.needs_input_grad[1]:
            d_onehot = torch.zeros_like(onehot)
        onehot_t = onehot.transpose(1, 2)  # (B, A, U)
        for t in range(len(steps) - 1, -1, -1):
            inputs, act, g, c_prev, tanh_c, h, beta_step, distance, squared, gaussian, live, phi = steps[t]
            if d_ws is not None:
                d_w = d_w + d_ws[:, t]  # w_t reaches the loss directly and through step t + 1's gates
            d_phi = F.pad(torch.bmm(d_w.unsqueeze(1), onehot_t).squeeze(1), (0, 1))  # (B, U + 1), eq. 47
            if d_phis is not None:
                d_phi = d_phi + d_phis[:, t]
            if d_onehot is not None:
                d_onehot.baddbmm_(phi[:, : onehot.size(1), None], d_w.unsqueeze(1))
            weighted = d_phi.unsqueeze(1) * torch.where(live, gaussian, 0.0)  # no gradient where floored
            beta, step = beta_step[:, :gaussians], beta_step[:, gaussians:]
            d_kappa = d_kappa - 2 * beta * (weighted * distance).sum(2)
            d_hats = torch.cat([weighted.sum(2), -beta * (weighted * squared).sum(2), d_kappa * step], 1)
            d_window_weight.addmm_(d_hats.t(), h)
            d_window_bias += d_hats.sum(0)
            d_h = torch.addmm(d_h, d_hats, window_weight)
            if d_hs is not None:
                d_h = d_h + d_hs[:, t]
            if clip:
                d_h = d_h.clamp(-clip, clip)
            i, f, o = act[:, :hidden], act[:, hidden : 2 * hidden], act[:, 3 * hidden :]
            d_c = torch.addcmul(d_c, d_h, o * (1 - tanh_c * tanh_c))
            # each gate's gradient times its derivative from its output: sigmoid' = s (1 - s), tanh' = 1 - g^2
            d_gate = torch.cat([d_c * g * i * (1 - i), d_c * c_prev * f * (1 - f), d_c * i * (1 - g * g),
                                d_h * tanh_c * o * (1 - o)], dim=1)
            d_c = d_c * f
            d_weight.addmm_(d_gate.t(), inputs)
            d_bias += d_gate.sum(0)
            d_inputs = d_gate @ weight  # (B, 3 + A + H): to x_t, w_(t-1) and h_(t-1)
            d_x.append(d_inputs[:, :3])
            d_w, d_h = d_inputs[:, 3 : 3 + letters], d_inputs[:, 3 + letters :]
        return (torch.stack(d_x[::-1], 1), d_onehot, d_h, d_c, d_kappa, d_w, d_weight[:, : 3 + letters],
                d_weight[:, 3 + letters :], d_bias, d_bias.clone(), d_window_weight, d_window_bias, None)
