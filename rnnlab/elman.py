"""The Elman layer (tanh or ReLU RNN) for the CPU, with its backward pass written out, as min-char-rnn does.

torch's ``nn.RNN`` has no fused CPU kernel: it runs two ``linear`` calls, an add and the activation per time
step, each recorded by autograd, and autograd then replays every one of them backwards. For a small model
that bookkeeping is the whole cost (min-char-rnn: 1,381 operations per 25-character step). Here the inputs'
projection is one matmul for all steps, the recurrence one ``addmm`` and one activation per step without a
graph, and the backward pass is BPTT by hand (Werbos 1990; the loop of ``reference/numpy_rnn.py``)::

    forward                                    backward, t = T .. 1
    p_t = W_ih x_t + b_ih + b_hh  (all t)      dh     = dout_t + dnext
    h_t = act(p_t + W_hh h_(t-1))              dpre_t = dh * act'(h_t)     tanh: 1 - h_t^2;  relu: h_t > 0
                                               dnext  = dpre_t W_hh
    then, once: dW_hh = sum_t dpre_t^T h_(t-1), dW_ih = sum_t dpre_t^T x_t, db = sum_t dpre_t, dx_t = dpre_t W_ih

so each weight's gradient is one matmul over all steps. Tested against ``nn.RNN`` (outputs and gradients)
and by finite differences. On CUDA ``nn.RNN`` runs cuDNN's fused kernel, which is faster still.
"""

import torch


class ElmanLayer(torch.autograd.Function):
    """``apply(x (B, T, I), h0 (B, H), weight_ih, weight_hh, bias_ih, bias_hh, relu)`` -> outputs ``(B, T, H)``
    and the last state ``(B, H)``, with nn.RNN's parameter shapes (``weight_ih (H, I)``, ``weight_hh (H, H)``)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")  # under bf16 autocast, the backward pass runs under it too
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, relu: bool):
        batch, steps, inputs = x.shape
        x_tm = x.transpose(0, 1).reshape(steps * batch, inputs)  # time-major: step t is rows t*B .. t*B + B - 1
        projected = torch.addmm(bias_ih + bias_hh, x_tm, weight_ih.t()).view(steps, batch, -1)
        w_hh_t, h, outputs = weight_hh.t(), h0, []
        for p_t in projected.unbind(0):
            h = torch.addmm(p_t, h, w_hh_t)
            h = h.relu_() if relu else h.tanh_()
            outputs.append(h)
        hs = torch.stack(outputs)  # (T, B, H)
        ctx.save_for_backward(x_tm, h0, weight_ih, weight_hh, hs)
        ctx.relu = relu
        return hs.transpose(0, 1), h.clone()

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, d_outputs, d_last):
        x_tm, h0, weight_ih, weight_hh, hs = ctx.saved_tensors
        steps, batch, hidden = hs.shape
        slope = (hs > 0).to(hs.dtype) if ctx.relu else 1 - hs * hs  # act'(p_t), from the outputs
        # (dout_t + dnext) * slope_t as dout_t * slope_t (all steps at once) + dnext * slope_t: one op a step
        direct = (d_outputs.transpose(0, 1) * slope if d_outputs is not None else torch.zeros_like(hs)).unbind(0)
        slopes = slope.unbind(0)
        d_next = d_last if d_last is not None else torch.zeros_like(h0)
        d_pre = []
        for t in range(steps - 1, -1, -1):
            d = torch.addcmul(direct[t], d_next, slopes[t])
            d_pre.append(d)
            d_next = d @ weight_hh
        d_pre = torch.stack(d_pre[::-1]).view(steps * batch, hidden)
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]]).view(steps * batch, hidden)
        d_bias = d_pre.sum(0)
        d_x = (d_pre @ weight_ih).view(steps, batch, -1).transpose(0, 1)
        return d_x, d_next, d_pre.t() @ x_tm, d_pre.t() @ h_prev, d_bias, d_bias.clone(), None  # no aliased grads
