"""A fine-tuned network -> a checkpoint in the published GLiNER layout.

The output holds the base checkpoint's ``gliner_config.json`` and tokenizer files unchanged, the
weights under the base's own keys (mapped back with :func:`biogliner.model.checkpoint.map_key`;
keys we never load, the dead LSTM ``rnn.*``, are copied from the base) in the base's format
(``model.safetensors`` or ``pytorch_model.bin``), and ``labels_tokenizer/`` (written from the
loaded labels tokenizer when the base has none, as gliner 0.2.29 does). gliner and biogliner both
load it; its fingerprint differs from the base's as soon as one weight changed.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import torch

from biogliner.model.checkpoint import IGNORED_PREFIXES, WEIGHT_FILES, load_state_dict, map_key

logger = logging.getLogger(__name__)


def gliner_state(net: torch.nn.Module, base_state: dict) -> dict[str, torch.Tensor]:
    """``net``'s weights under the base checkpoint's keys and dtypes (every base key present)."""
    ours = net.state_dict()
    out = {}
    for key, tensor in base_state.items():
        if key.startswith(IGNORED_PREFIXES):
            out[key] = tensor.clone()
            continue
        name = map_key(key)
        if name is None or name not in ours:
            raise KeyError(f"base checkpoint key {key!r} has no parameter in the network")
        out[key] = ours[name].detach().to("cpu", tensor.dtype).clone().contiguous()
    return out


def write_checkpoint(net: torch.nn.Module, base_dir: Path, labels_tokenizer, out: str, storage_options: dict | None = None) -> str:
    """Write the fine-tuned checkpoint to ``out`` (a local directory or an fsspec URL); returns ``out``."""
    base_dir = Path(base_dir)
    base_state, weights_file = load_state_dict(base_dir)
    state = gliner_state(net, base_state)
    with tempfile.TemporaryDirectory(prefix="biogliner-export-") as tmp:
        stage = Path(tmp) / "ckpt"
        shutil.copytree(base_dir, stage, ignore=shutil.ignore_patterns(*WEIGHT_FILES, "*.safetensors", ".complete", "*.lock"))
        if weights_file.endswith((".safetensors", "model.safetensors.index.json")):
            from safetensors.torch import save_file

            save_file(state, str(stage / "model.safetensors"), metadata={"format": "pt"})
        else:
            torch.save(state, stage / "pytorch_model.bin")
        if not (stage / "labels_tokenizer").is_dir():
            labels_tokenizer.save_pretrained(str(stage / "labels_tokenizer"))
        _publish(stage, out, storage_options)
    logger.info("wrote fine-tuned checkpoint to %s", out)
    return out


def _publish(stage: Path, out: str, storage_options: dict | None) -> None:
    from biogliner import io as bio

    if "://" not in out or out.startswith("file://"):
        dest = Path(out[len("file://") :] if out.startswith("file://") else out)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copytree(stage, dest, dirs_exist_ok=True)
        return
    fs, root = bio.filesystem(out, storage_options)
    for path in sorted(p for p in stage.rglob("*") if p.is_file()):
        fs.put_file(str(path), f"{root.rstrip('/')}/{path.relative_to(stage).as_posix()}")
