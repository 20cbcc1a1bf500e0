"""gliner 0.2.29's span loss (``BiEncoderSpanModel.loss`` + ``BaseModel._loss`` +
``focal_loss_with_logits``), on the flat span layout of :mod:`biogliner.train.forward`.

The reference scores a padded ``[B, L, K, C]`` grid; here logits are ``[N, K, C]`` over the batch's
``N`` words (no padding) and ``span_mask[N, K]`` marks the spans that end inside their own text.
Padded and past-the-end spans contribute nothing in both, so the sums are equal term by term.

Reproduced exactly, quirks included:

- ``BiEncoderSpanModel.loss`` passes ``label_smoothing`` positionally into ``_loss``'s
  ``prob_margin`` slot: the value shifts the NEGATIVE probabilities (``p - m`` clamped to [0, 1])
  and the targets are never smoothed. ``label_smoothing`` here means what it means there.
- ``reduction="mean"`` divides by the number of valid spans (not spans x labels); any other
  value than ``"mean"`` sums.
- ``negatives`` < 1 drops negatives at random (``masking``): ``global`` per (span, label),
  ``span`` per span without a positive label. Random, so equal to the reference in distribution
  only; ``masking="none"`` keeps every term (the deterministic setting).
"""

from __future__ import annotations

from typing import Literal

import torch

LossType = Literal["focal", "bce"]
Masking = Literal["none", "global", "span"]
Reduction = Literal["sum", "mean"]


def focal_terms(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    alpha: float = -1.0,
    gamma: float = 0.0,
    prob_margin: float = 0.0,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Per-element focal loss of gliner's ``focal_loss_with_logits`` (no label smoothing, no ignore index)."""
    p = torch.sigmoid(logits)
    pm = torch.clamp(p - prob_margin, min=0.0, max=1.0)
    loss = -targets * torch.log(p.clamp(min=eps)) - (1.0 - targets) * torch.log((1.0 - pm).clamp(min=eps))
    if gamma > 0:
        p_t = p * targets + (1 - pm) * (1 - targets)
        loss = loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def span_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    span_mask: torch.Tensor,
    *,
    loss_type: LossType = "focal",
    alpha: float = -1.0,
    gamma: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: Reduction = "sum",
    negatives: float = 1.0,
    masking: Masking = "none",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The scalar training loss for logits/targets ``[N, K, C]`` and ``span_mask`` ``[N, K]``.

    ``loss_type="bce"`` is the reference's "focal with alpha=-1, gamma=0" (alpha/gamma ignored).
    """
    if loss_type == "bce":
        alpha, gamma = -1.0, 0.0
    elif loss_type != "focal":
        raise ValueError(f"loss_type must be focal or bce, not {loss_type!r}")
    terms = focal_terms(logits, targets, alpha=alpha, gamma=gamma, prob_margin=label_smoothing)
    if masking != "none":
        terms = terms * _negative_mask(targets, negatives, masking, generator)
    mask = span_mask.to(terms.dtype).unsqueeze(-1)
    total = (terms * mask).sum()
    if reduction == "mean":
        n_valid = span_mask.sum()
        return total / n_valid if n_valid > 0 else logits.new_zeros(())
    return total


def _negative_mask(targets: torch.Tensor, negatives: float, masking: str, generator) -> torch.Tensor:
    if masking == "global":
        keep = torch.rand(targets.shape, generator=generator, device=targets.device) < negatives
        return torch.where(targets == 0, keep.to(targets.dtype), torch.ones_like(targets))
    if masking == "span":
        neg = (targets.sum(dim=-1, keepdim=True) == 0).expand_as(targets)
        keep = (torch.rand(targets.shape, generator=generator, device=targets.device) < negatives).to(targets.dtype)
        return torch.where(neg, keep, torch.ones_like(targets))
    raise ValueError(f"masking must be none, global or span, not {masking!r}")
