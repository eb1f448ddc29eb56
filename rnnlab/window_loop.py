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
                                                                   saved, its exponent floored as attention.py's)
    alpha_hat, beta, dk = h_t W_win + b_win, exp, exp     dalpha_hat = sum_u dphi G
    kappa_t = kappa_(t-1) + dk                            dbeta_hat  = -beta sum_u dphi G (kappa - u)^2
    phi_t(u) = sum_k G_k(u)                               dkappa     = dkappa_(t+1) - 2 beta sum_u dphi G (kappa - u)
    w_t = sum_(u <= U) phi_t(u) c_u                       dh_t   = dh_t(out) + dgates_(t+1) W_hh + dhat W_win,
                                                                   clamped to +-clip (Graves' derivative clipping)
                                                          then the LSTM cell's own backward, to dgates_t

Layer 1's inputs are written row by row into one (T, B, 3 + A + H) tensor and the backward loop writes
each step's gate gradients into one (T, B, 4H) tensor, so each weight's gradient is one matmul over all
T x B rows after the loop, not an ``addmm_`` of B rows a step. (A 2026-12-01 note in
benchmarks/results.md found such whole-sequence tensors faulting 13,000 fresh pages a call; the VM of
2026-12-02 faulted 0-1, and blocks of 25 or 100 steps were slower there.) The forward pass also keeps, for
each step, what the backward pass multiplies by (each gate's derivative times its partner, and dh/dc), so
the backward step is a few fused products instead of three dozen small operations: with both, 0.89x the
loop's time. A term whose exponent sits on the floor passes on e^-80 (1.8e-35) of its gradient where
attention.py's clamp passes none. ``HandwritingSynthesizer`` uses it outside autocast (its bf16 path keeps
the recorded loop, whose window stays in fp32); it is tested against that loop (outputs and gradients) and
by finite differences.
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
        ctx.set_materialize_grads(False)  # phi's gradient is None in training: not a block of zeros to add
        batch, steps = x.shape[:2]
        hidden, length, gaussians, letters = h.size(1), onehot.size(1), kappa.size(1), onehot.size(2)
        weight = torch.cat([weight_ih, weight_hh], dim=1)  # (4H, 3 + A + H), for [x_t, w_(t-1), h_(t-1)]
        bias, weight_t, window_weight_t = bias_ih + bias_hh, weight.t(), window_weight.t()
        positions = torch.arange(1, length + 2, device=x.device, dtype=x.dtype)  # u = 1 .. U + 1
        padded = F.pad(onehot, (0, 0, 0, 1))  # (B, U + 1, A): u = U + 1 (the end) writes no letter
        inputs_all = x.new_empty(steps, batch, 3 + letters + hidden)  # [x_t, w_(t-1), h_(t-1)], row by row
        saved, hs, ws, phis = [], [], [], []
        for inputs, x_t in zip(inputs_all, x.unbind(1)):
            torch.cat([x_t, w, h], dim=1, out=inputs)
            pre = torch.addmm(bias, inputs, weight_t)
            act = pre.sigmoid()  # i, f and o; the g block's sigmoid is unused
            i, f, o = act[:, :hidden], act[:, hidden : 2 * hidden], act[:, 3 * hidden :]
            g = pre[:, 2 * hidden : 3 * hidden].tanh()
            c_prev, c = c, torch.addcmul(f * c, i, g)
            tanh_c = c.tanh()
            h = o * tanh_c
            # What the backward pass multiplies: each gate's derivative times its partner in c or h
            # (sigmoid' = s (1 - s), tanh' = 1 - g^2), and dh/dc = o (1 - tanh(c)^2) = o - h tanh(c).
            local = torch.addcmul(act, act, act, value=-1)
            local[:, :hidden].mul_(g)
            local[:, hidden : 2 * hidden].mul_(c_prev)
            torch.addcmul(i, i * g, g, value=-1, out=local[:, 2 * hidden : 3 * hidden])
            local[:, 3 * hidden :].mul_(tanh_c)
            to_c = torch.addcmul(o, h, tanh_c, value=-1)
            hats = torch.addmm(window_bias, h, window_weight_t)  # alpha_hat, beta_hat, kappa_hat (eq. 48)
            beta_step = hats[:, gaussians:].exp()  # beta and kappa's step (eqs. 50-51)
            kappa = kappa + beta_step[:, gaussians:]
            distance = kappa.unsqueeze(2) - positions  # kappa - u, (B, K, U + 1)
            squared = distance.square()
            exponent = torch.addcmul(hats[:, :gaussians, None], beta_step[:, :gaussians, None], squared, value=-1)
            gaussian = exponent.clamp_min_(EXPONENT_FLOOR).exp_()  # attention.window_weights
            phi = gaussian.sum(1)
            w = torch.bmm(phi.unsqueeze(1), padded).squeeze(1)
            saved.append((f.contiguous(), local, to_c, h, beta_step, distance, squared, gaussian))  # not all of act
            hs.append(h)
            ws.append(w)
            phis.append(phi)
        ctx.save_for_backward(padded, weight, window_weight, inputs_all)
        ctx.steps, ctx.phis, ctx.clip = saved, phis, clip
        return (torch.stack(hs, 1), torch.stack(ws, 1), torch.stack(phis, 1), h.clone(), c.clone(), kappa.clone(),
                w.clone())

    @staticmethod
    def backward(ctx, d_hs, d_ws, d_phis, d_h, d_c, d_kappa, d_w):
        padded, weight, window_weight, inputs_all = ctx.saved_tensors
        clip = ctx.clip
        steps, batch, hidden, letters = inputs_all.size(0), padded.size(0), window_weight.size(1), padded.size(2)
        length, gaussians, gates = padded.size(1) - 1, window_weight.size(0) // 3, weight.size(0)
        zeros = padded.new_zeros
        d_h = d_h if d_h is not None else zeros(batch, hidden)
        d_c = d_c if d_c is not None else zeros(batch, hidden)
        d_kappa = d_kappa if d_kappa is not None else zeros(batch, gaussians)
        d_w = d_w if d_w is not None else zeros(batch, letters)
        d_onehot = zeros(batch, length, letters) if ctx.needs_input_grad[1] else None
        padded_t = padded.transpose(1, 2).contiguous()  # (B, A, U + 1)
        recurrent = weight[:, 3:].contiguous()  # to w_(t-1) and h_(t-1)
        d_gates = padded.new_empty(steps, batch, gates)
        d_hats_all = padded.new_empty(steps, batch, 3 * gaussians)
        for t in range(steps - 1, -1, -1):
            f, local, to_c, h, beta_step, distance, squared, gaussian = ctx.steps[t]
            if d_ws is not None:
                d_w = d_w + d_ws[:, t]  # w_t reaches the loss directly and through step t + 1's gates
            d_phi = torch.bmm(d_w.unsqueeze(1), padded_t).squeeze(1)  # (B, U + 1), eq. 47
            if d_phis is not None:
                d_phi = d_phi + d_phis[:, t]
            if d_onehot is not None:
                d_onehot.baddbmm_(ctx.phis[t][:, :length, None], d_w.unsqueeze(1))
            weighted = d_phi.unsqueeze(1) * gaussian
            beta, step = beta_step[:, :gaussians], beta_step[:, gaussians:]
            d_kappa = torch.addcmul(d_kappa, beta, (weighted * distance).sum(2), value=-2)
            d_hats = torch.cat([weighted.sum(2), -beta * (weighted * squared).sum(2), d_kappa * step], 1,
                               out=d_hats_all[t])
            d_h = torch.addmm(d_h, d_hats, window_weight)
            if d_hs is not None:
                d_h = d_h + d_hs[:, t]
            if clip:
                d_h = d_h.clamp_(-clip, clip)
            d_c = torch.addcmul(d_c, d_h, to_c)
            d_gate = d_gates[t]
            torch.mul(d_c.unsqueeze(1), local[:, : 3 * hidden].view(batch, 3, hidden),
                      out=d_gate[:, : 3 * hidden].view(batch, 3, hidden))
            torch.mul(d_h, local[:, 3 * hidden :], out=d_gate[:, 3 * hidden :])
            d_c = d_c * f
            d_inputs = d_gate @ recurrent  # (B, A + H): to w_(t-1) and h_(t-1)
            d_w, d_h = d_inputs[:, :letters], d_inputs[:, letters:]
        # Each weight's gradient is one matmul over all T x B rows (the loop above only carries the state).
        rows, hat_rows = d_gates.view(-1, gates), d_hats_all.view(-1, 3 * gaussians)
        d_weight = rows.t() @ inputs_all.view(-1, inputs_all.size(2))
        d_window_weight = hat_rows.t() @ torch.stack([saved[3] for saved in ctx.steps]).view(-1, hidden)
        d_bias = rows.sum(0)
        d_x = (d_gates @ weight[:, :3]).transpose(0, 1).contiguous() if ctx.needs_input_grad[0] else None
        return (d_x, d_onehot, d_h, d_c, d_kappa, d_w, d_weight[:, : 3 + letters], d_weight[:, 3 + letters :],
                d_bias, d_bias.clone(), d_window_weight, hat_rows.sum(0), None)
