"""The LSTM layer for bf16 training on the CPU, with its backward pass written out.

Under ``precision = "bf16"`` (precision.py) torch runs ``nn.LSTM`` on oneDNN's bf16 kernels, whose backward
pass is slower than fp32's (zaremba-medium's shape, one thread: 136 ms a layer against 98). This layer keeps
bf16 where it pays, the matrix products, and does the rest as the recurrence needs it, in fp32::

    forward (gates i, f, g, o as torch orders them)     backward, t = T .. 1 (everything in A_t, B_t
    p   = W_ih x_t + b  for all t      one bf16 matmul    is known before the loop: one pass over all t)
    a_t = p_t + W_hh h_(t-1)           bf16 addmm         dh   = dout_t + dh_next
    i, f, o = sigmoid, g = tanh        fp32               dc   = dc_next + dh * A_t,   A_t = o (1 - tanh^2 c_t)
    c_t = f c_(t-1) + i g              fp32 (the state)   da_t = [dc, dc, dc, dh] * B_t  (the four gates)
    h_t = o tanh(c_t)                  fp32               dc_next = dc * f;   dh_next = da_t W_hh   (bf16)

    then, once: dW_hh = sum_t da_t^T h_(t-1), dW_ih = sum_t da_t^T x_t, db = sum_t da_t, dx = da W_ih

with B_t = [g i (1 - i), c_(t-1) f (1 - f), i (1 - g^2), tanh(c_t) o (1 - o)]. Six operations a step backwards,
where autograd would replay some thirty. Tested against ``nn.LSTM`` in fp32 and float64 and by finite
differences; used only for bf16 training on the CPU, and there only for a small batch against a wide layer,
where it is faster (the measurements by MIN_WIDTH_PER_ROW); everything else keeps torch's kernels.
"""

import torch


class LSTMLayer(torch.autograd.Function):
    """``apply(x (B, T, I), h0 (B, H), c0 (B, H), weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh)`` ->
    outputs ``(B, T, H)``, ``h_T``, ``c_T`` (fp32), with nn.LSTM's parameter layout."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")  # the backward pass runs under the forward's autocast state
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh):
        batch, steps, inputs = x.shape
        hidden = weight_hh.size(1)
        x_tm = x.transpose(0, 1).reshape(steps * batch, inputs)
        projected = torch.addmm(bias_ih + bias_hh, x_tm, weight_ih.t()).view(steps, batch, 4 * hidden)
        work = torch.promote_types(weight_hh.dtype, torch.float32)  # the gates' and the state's dtype: fp32
        if torch.is_autocast_enabled("cpu"):  # cast W_hh once: autocast caches casts of leaf weights only,
            weight_hh = weight_hh.to(torch.get_autocast_dtype("cpu"))  # and weight_drop's W_hh is not one
        w_hh_t, h, c = weight_hh.t(), h0, c0.to(work)
        hs, cs, acts = [], [], []
        for p_t in projected.unbind(0):
            a = torch.addmm(p_t, h, w_hh_t).to(work)
            a[:, : 2 * hidden].sigmoid_()
            a[:, 2 * hidden : 3 * hidden].tanh_()
            a[:, 3 * hidden :].sigmoid_()
            i, f, g, o = a.chunk(4, dim=1)
            c = torch.addcmul(f * c, i, g)
            h = o * c.tanh()
            hs.append(h)
            cs.append(c)
            acts.append(a)
        hs, cs = torch.stack(hs), torch.stack(cs)
        ctx.save_for_backward(x_tm, h0, c0, weight_ih, weight_hh, hs, cs, torch.stack(acts))
        return hs.transpose(0, 1), h.clone(), c.clone()

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, d_outputs, d_hn, d_cn):
        x_tm, h0, c0, weight_ih, weight_hh, hs, cs, acts = ctx.saved_tensors
        steps, batch, hidden = hs.shape
        work = hs.dtype
        i, f, g, o = acts.chunk(4, dim=-1)
        tanh_c = cs.tanh()
        c_prev = torch.cat([c0.to(work).unsqueeze(0), cs[:-1]])
        a_factor = (o * (1 - tanh_c * tanh_c)).unbind(0)
        b_factor = torch.cat([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g), tanh_c * o * (1 - o)],
                             dim=-1).unbind(0)
        forget = f.unbind(0)
        d_out = (d_outputs.transpose(0, 1).to(work) if d_outputs is not None else torch.zeros_like(hs)).unbind(0)
        d_h = d_hn.to(work) if d_hn is not None else torch.zeros_like(hs[0])
        d_c = d_cn.to(work) if d_cn is not None else torch.zeros_like(hs[0])
        d_gates = []
        for t in range(steps - 1, -1, -1):
            dh = d_out[t] + d_h
            dc = torch.addcmul(d_c, dh, a_factor[t])
            da = torch.cat([dc, dc, dc, dh], dim=1) * b_factor[t]
            d_gates.append(da)
            d_c = dc * forget[t]
            d_h = (da @ weight_hh).to(work)
        d_a = torch.stack(d_gates[::-1]).view(steps * batch, 4 * hidden)
        h_prev = torch.cat([h0.to(work).unsqueeze(0), hs[:-1]]).view(steps * batch, hidden)
        d_bias = d_a.sum(0)
        d_x = (d_a @ weight_ih).view(steps, batch, -1).transpose(0, 1)
        return (d_x.to(x_tm.dtype), d_h.to(h0.dtype), d_c.to(c0.dtype), (d_a.t() @ x_tm).to(work),
                (d_a.t() @ h_prev).to(work), d_bias, d_bias.clone())


# oneDNN's bf16 LSTM loses to this layer only where the recurrent matmul is bound by reading W_hh: a small
# batch against a wide layer. Forward + backward of one layer under bf16, one thread, this project's VM
# (2026-12-01), oneDNN / this layer: B 20 x H 650 (zaremba-medium) 201 / 157 ms; B 20 x H 1500 (large)
# 1,265 / 827; B 20 x H 200 (small) 8.8 / 17.2; B 64 x H 512 (shakespeare-lstm) 768 / 1,094; B 32 x H 256
# 88 / 106; B 50 x H 128 (char-rnn) 18 / 40. So it is used from a width of 20 rows of W_hh per batch row.
MIN_WIDTH_PER_ROW = 20


def bf16_lstm_applies(x: torch.Tensor, hidden_size: int) -> bool:
    """Whether a CPU LSTM stack should run :class:`LSTMLayer`: training (gradients on) under bf16 autocast, a
    batch ``x.size(0)`` small against ``hidden_size`` (the measurements above)."""
    return (x.device.type == "cpu" and torch.is_grad_enabled() and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16 and hidden_size >= MIN_WIDTH_PER_ROW * x.size(0))
