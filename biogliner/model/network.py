"""The GLiNER bi-encoder forward pass (``span_mode="markerV0"``), with the span head folded.

Text side, per chunk of words::

    h      = text_encoder(subwords) [@ projection]            # [B, T, D]
    w_i    = h[first subtoken of word i]                       # [N, D], the batch's words, no padding
    s, e   = MLP_start(w), MLP_end(w)                          # Linear(D,4D) ReLU Linear(4D,D)
    A_i    = W1a relu(s_i);   B_j = W1b relu(e_j) + b1          # [N, 4D], once per word

Label side, once per label set (see :class:`LabelVectors`)::

    p_c    = prompt_rep_layer(mean_pool(labels_encoder(label) [@ labels_projection]))
    q_c    = W2ᵀ p_c;   r_c = b2 · p_c

GLiNER's span representation is ``out_project(relu(cat(s_i, e_j)))`` with ``out_project =
Linear(2D,4D) ReLU Linear(4D,D)``, scored by a dot product with ``p_c``. Since the last layer is
linear, ``logit(i, j, c) = relu(A_i + B_j) · q_c + r_c`` exactly: the ``[B, L, K, D]`` span tensor
is never built and the per-span cost drops from ~12·D² to 4D·(C+1) multiply-adds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

logger = logging.getLogger(__name__)


class MLP(nn.Module):
    """GLiNER's ``create_projection_layer``: Linear(d_in, 4·d_out) → ReLU → (Dropout) → Linear(4·d_out, d_out)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.fc1 = nn.Linear(d_in, 4 * d_out)
        self.fc2 = nn.Linear(4 * d_out, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


@dataclass
class LabelVectors:
    """Everything the span head needs about a label set: ``p`` [C, D] (after ``prompt_rep_layer``),
    the folded ``q`` [C, 4D] and ``r`` [C]."""

    p: torch.Tensor
    q: torch.Tensor
    r: torch.Tensor


class SpanHead(nn.Module):
    """SpanMarkerV0 + the label dot product, folded (see module docstring).

    Works on the flat list of a batch's words ``[N, D]`` (row after row, no padding): the span
    ``(p, k)`` pairs word ``p`` with word ``p + k``; spans that run past their own text are junk
    and are masked by the caller.
    """

    BLOCK = 128  # CPU: words per step of the width loop, so the [BLOCK, 4D] scratch stays in L2

    def __init__(self, d: int, max_width: int):
        super().__init__()
        self.d = d
        self.max_width = max_width
        self.project_start = MLP(d, d)
        self.project_end = MLP(d, d)
        self.out_project = MLP(2 * d, d)
        self._fused: tuple | None = None

    def fold_labels(self, p: torch.Tensor) -> LabelVectors:
        w2, b2 = self.out_project.fc2.weight, self.out_project.fc2.bias  # [D, 4D], [D]
        return LabelVectors(p=p, q=p @ w2, r=p @ b2)

    def _fc1_both(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first layers of MLP_start and MLP_end stacked: one GEMM for both (cached)."""
        w = self.project_start.fc1.weight
        if self._fused is None or self._fused[0].device != w.device or self._fused[0].dtype != w.dtype:
            self._fused = (
                torch.cat([w, self.project_end.fc1.weight]).T.contiguous(),
                torch.cat([self.project_start.fc1.bias, self.project_end.fc1.bias]),
            )
        return self._fused

    def word_terms(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``A`` [N, 4D] and ``B + b1`` [N, 4D] from word vectors [N, D]."""
        w_both, b_both = self._fc1_both()
        h = torch.addmm(b_both, words, w_both).relu_()  # [N, 8D]: hidden of MLP_start | MLP_end
        hd = h.shape[1] // 2
        s = torch.addmm(self.project_start.fc2.bias, h[:, :hd], self.project_start.fc2.weight.T).relu_()
        e = torch.addmm(self.project_end.fc2.bias, h[:, hd:], self.project_end.fc2.weight.T).relu_()
        w1 = self.out_project.fc1.weight  # [4D, 2D]
        a = s @ w1[:, : self.d].T
        b = torch.addmm(self.out_project.fc1.bias, e, w1[:, self.d :].T)
        return a, b

    def forward(self, words: torch.Tensor, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Span logits [N, K, C] for flat word vectors [N, D] and folded labels ``q`` [C, 4D], ``r`` [C]:
        entry ``[p, k, c]`` scores words ``p..p+k`` under label ``c``."""
        a, b = self.word_terms(words)
        n, k_max = a.shape[0], self.max_width
        b = torch.cat([b, b.new_zeros(k_max, b.shape[1])])  # spans past the last word: junk, masked later
        qt = q.T.to(a.dtype).contiguous()
        rr = r.to(a.dtype)
        # No allocation inside the loop: one scratch block, outputs written in place ([K, N, C] so
        # that each (width, block) slice is contiguous).
        block = self.BLOCK if a.device.type == "cpu" else max(n, 1)  # GPUs: few large kernels
        out = a.new_empty((k_max, n, q.shape[0]))
        scratch = a.new_empty((min(n, block), a.shape[1]))
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            h = scratch[: hi - lo]
            for k in range(k_max):
                torch.add(a[lo:hi], b[lo + k : hi + k], out=h).relu_()
                torch.addmm(rr, h, qt, out=out[k, lo:hi])
        return out.permute(1, 0, 2)


class Encoder(nn.Module):
    """A transformers backbone (built from its config dict, no download) + optional projection."""

    def __init__(self, config: dict, d: int):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        cfg = dict(config)
        model_type = cfg.pop("model_type")
        for k in ("_name_or_path", "transformers_version", "architectures"):
            cfg.pop(k, None)
        hf_config = AutoConfig.for_model(model_type, **cfg)
        self.model = AutoModel.from_config(hf_config)
        width = hf_config.hidden_size
        self.projection = nn.Linear(width, d) if width != d else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state
        return self.projection(h) if self.projection is not None else h


class BiEncoderNet(nn.Module):
    """All weights of a GLiNER bi-encoder that its forward pass uses."""

    def __init__(self, encoder_config: dict, labels_encoder_config: dict, d: int, max_width: int):
        super().__init__()
        self.text = Encoder(encoder_config, d)
        self.labels = Encoder(labels_encoder_config, d)
        self.span_head = SpanHead(d, max_width)
        self.prompt_rep_layer = MLP(d, d)

    # -- labels ---------------------------------------------------------------------------------
    def encode_labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> LabelVectors:
        x = self.labels(input_ids, attention_mask)  # [C, T, D]
        m = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)  # GLiNER's mean_pooling
        return self.span_head.fold_labels(self.prompt_rep_layer(pooled))

    # -- text -----------------------------------------------------------------------------------
    def word_vectors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, flat_pos: torch.Tensor) -> torch.Tensor:
        """Flat word vectors [N, D]: the first subtoken's vector of each word, ``flat_pos`` indexing
        the batch's tokens flattened row after row."""
        h = self.text(input_ids, attention_mask)
        return h.reshape(-1, h.shape[-1]).index_select(0, flat_pos)

    def span_logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        flat_pos: torch.Tensor,
        q: torch.Tensor,
        r: torch.Tensor,
    ) -> torch.Tensor:
        return self.span_head(self.word_vectors(input_ids, attention_mask, flat_pos), q, r)

