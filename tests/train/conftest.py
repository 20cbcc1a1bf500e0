"""Fixtures for the fine-tuning tests: the model tests' gliner-built checkpoints (same recipe,
loaded from tests/model/conftest.py so there is one builder), and gliner/biogliner loaders."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_MODEL_TESTS = Path(__file__).resolve().parent.parent / "model"


def _model_conftest():
    name = "_biogliner_model_test_fixtures"
    if name not in sys.modules:
        if str(_MODEL_TESTS) not in sys.path:
            sys.path.insert(0, str(_MODEL_TESTS))  # model_corpus
        spec = importlib.util.spec_from_file_location(name, _MODEL_TESTS / "conftest.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


@pytest.fixture(scope="session")
def gliner_checkpoints(tmp_path_factory):
    """``{"bert": Path, "deberta": Path}``: random bi-encoders built and saved by gliner itself
    (BERT text encoder without projection, .bin; DeBERTa-v2 with projection, safetensors)."""
    pytest.importorskip("gliner")
    m = _model_conftest()
    root = tmp_path_factory.mktemp("ft-gliner-built")
    return {
        "bert": m.build_gliner_checkpoint(root, "bert", text_encoder="bert", width=32, hidden_size=32, seed=11).path,
        "deberta": m.build_gliner_checkpoint(
            root, "deberta", text_encoder="deberta", width=32, hidden_size=48, seed=12, safetensors=True
        ).path,
    }


def load_reference(path: Path):
    import warnings

    from gliner import GLiNER

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GLiNER.from_pretrained(str(path), local_files_only=True, strict=True)
