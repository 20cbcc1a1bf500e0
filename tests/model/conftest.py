"""Fixtures for the model tests (helpers live in model_checkpoints.py; re-exported here for older imports)."""

from __future__ import annotations

import pytest

from model_checkpoints import (  # noqa: F401
    LABELS,
    RefCheckpoint,
    _tokenizer,
    biogliner_model,
    build_gliner_checkpoint,
    reference_model,
)


@pytest.fixture(scope="session")
def ref_checkpoints(tmp_path_factory) -> dict[str, RefCheckpoint]:
    pytest.importorskip("gliner")
    root = tmp_path_factory.mktemp("gliner-built")
    return {
        # BERT text encoder, D == backbone width (no projection), saved as pytorch_model.bin
        "bert": build_gliner_checkpoint(root, "bert", text_encoder="bert", width=32, hidden_size=32, seed=1),
        # DeBERTa-v2 (v3-style) text encoder, D != backbone width (projection), saved as safetensors
        "deberta": build_gliner_checkpoint(
            root, "deberta", text_encoder="deberta", width=32, hidden_size=48, seed=2, safetensors=True
        ),
    }
