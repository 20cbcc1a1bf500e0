"""The differentiable training forward of the bi-encoder, through the folded span head.

Same algebra as inference (:mod:`biogliner.model.network`, whose weights it uses unchanged)::

    p_c  = prompt_rep_layer(mean_pool(labels_encoder(label_c)))          # [C, D], with gradients
    q_c  = W2ᵀ p_c,  r_c = b2 · p_c                                       # out_project's last layer
    A_i  = W1a relu(MLP_s(w_i)),  B_j = W1b relu(MLP_e(w_j)) + b1         # per word [N, 4D]
    logit(i, i+k, c) = drop(relu(A_i + B_{i+k})) · q_c + r_c

so neither the reference's ``[B, L, K, D]`` span tensor nor its ``[B, L, K, 4D]`` hidden is ever
stored: each width ``k`` is one :func:`torch.utils.checkpoint.checkpoint` segment whose
``[N, 4D]`` hidden is recomputed in the backward pass (RNG state preserved, so its dropout mask is
the same), and the activations kept per batch are ``O(N·(D + K·C))`` instead of ``O(N·K·7D)``.

Dropout sits where GLiNER's ``create_projection_layer`` puts it (after the hidden ReLU of
``project_start``, ``project_end``, ``out_project`` and ``prompt_rep_layer``) with the checkpoint's
``dropout`` rate; dropping ``out_project``'s hidden before ``W2`` is exactly dropping it before the
folded dot product. The backbones use their own dropout (``hidden_dropout_prob`` ...) in train mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from biogliner.model.network import MLP, BiEncoderNet


def _mlp(m: MLP, x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    h = torch.relu(m.fc1(x))
    if p > 0 and training:
        h = F.dropout(h, p, True)
    return m.fc2(h)


def _width(a: torch.Tensor, b_k: torch.Tensor, qt: torch.Tensor, r: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    h = torch.relu(a + b_k)
    if p > 0 and training:
        h = F.dropout(h, p, True)
    return torch.addmm(r, h, qt)


class TrainForward(nn.Module):
    """Wraps a :class:`BiEncoderNet` (its parameters are this module's): ``forward`` gives span
    logits ``[N, K, C]`` for a batch; the one module DDP wraps."""

    def __init__(self, net: BiEncoderNet, dropout: float = 0.0, recompute: bool = True):
        super().__init__()
        self.net = net
        self.dropout = float(dropout)
        self.recompute = recompute

    def label_vectors(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``p`` [C, D] (the reference's ``prompt_rep_layer(mean_pool(...))``), differentiable."""
        x = self.net.labels(ids, mask)
        m = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return _mlp(self.net.prompt_rep_layer, pooled, self.dropout, self.training)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        flat_pos: torch.Tensor,
        labels_input_ids: torch.Tensor,
        labels_attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        head = self.net.span_head
        p_drop, training = self.dropout, self.training
        p = self.label_vectors(labels_input_ids, labels_attention_mask)  # [C, D]
        qt = (p @ head.out_project.fc2.weight).T  # [4D, C]
        r = p @ head.out_project.fc2.bias  # [C]
        words = self.net.word_vectors(input_ids, attention_mask, flat_pos)  # [N, D]
        s = torch.relu(_mlp(head.project_start, words, p_drop, training))
        e = torch.relu(_mlp(head.project_end, words, p_drop, training))
        w1 = head.out_project.fc1.weight  # [4D, 2D]
        a = s @ w1[:, : head.d].T
        b = F.linear(e, w1[:, head.d :], head.out_project.fc1.bias)
        n = a.shape[0]
        b = torch.cat([b, b.new_zeros(head.max_width, b.shape[1])])  # spans past the last word: masked
        outs = []
        for k in range(head.max_width):
            args = (a, b[k : k + n], qt, r, p_drop, training)
            if self.recompute and torch.is_grad_enabled():
                outs.append(checkpoint(_width, *args, use_reentrant=False, preserve_rng_state=True))
            else:
                outs.append(_width(*args))
        return torch.stack(outs, dim=1)  # [N, K, C]
