"""Errors raised by :mod:`biogliner.model` (kept in a module with no heavy imports)."""

from __future__ import annotations


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing or corrupt file, key mismatch, unsupported kind
    (uni-encoder, ``post_fusion_schema``...). The message names the checkpoint and the problem."""


class LabelBankError(ValueError):
    """A label bank that cannot be used: built for another checkpoint, corrupt or incomplete."""
