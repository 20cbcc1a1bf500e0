"""The ONNX Runtime CPU backend: the text encoder's backbone exported once and run by onnxruntime.

    model = BiEncoder.load(ref, backend="onnx")        # or "onnx-int8"; default "torch"

``backend="onnx"`` exports ``net.text.model`` (the transformers backbone: DeBERTa, BERT, ...) to
ONNX (opset 17, dynamic batch and length, fp32) the first time a checkpoint is loaded with it,
checks the export against PyTorch on probe batches of other shapes than the one traced, and
swaps in :class:`OnnxBackbone`, an ``nn.Module`` with the backbone's call signature that runs an
``onnxruntime.InferenceSession``. Everything else (projection, span head, label encoder,
decoding) stays PyTorch. ``backend="onnx-int8"`` also quantizes the export's weights to int8
(``onnxruntime.quantization.quantize_dynamic``): faster, approximate, opt-in only.

Exports are cached per checkpoint, keyed by the model fingerprint (config, every tensor,
tokenizer files) and :data:`EXPORT_VERSION`: in ``<checkpoint>/biogliner-onnx/`` when that
directory is writable and not a Hugging Face hub snapshot, else in ``$BIOGLINER_CACHE/onnx/``
(default ``~/.cache/biogliner/onnx``). The fingerprint is also written into the ONNX file's
metadata and checked on load: a file that claims another checkpoint is re-exported, never used.
A file lock serialises concurrent exports of one checkpoint (model actors on one node) and files
appear atomically (written aside, then renamed).

fp32 is not bit-identical to PyTorch (other kernels, other summation order): hidden states differ
by ~1e-6, span scores by ~1e-7, so a span whose score sits within that of its threshold can flip.
That is why ``torch`` stays the default (see docs/model.md, "ONNX Runtime backend").
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import torch
from torch import nn

logger = logging.getLogger(__name__)

Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
OPSET = 17
EXPORT_VERSION = "1"  # bump when the export recipe changes: older cached exports are then ignored
EXACT_TOL = 1e-4  # max |onnx - torch| over probe hidden states accepted for the fp32 export
SUBDIR = "biogliner-onnx"
_META_FP, _META_VERSION, _META_DIFF = "biogliner_fingerprint", "biogliner_export_version", "biogliner_max_abs_diff"
_INSTALL_HINT = "install the onnx extra: pip install 'biogliner[onnx]' (onnxruntime, onnx)"


class OnnxExportError(RuntimeError):
    """The backbone could not be exported, or its export does not reproduce PyTorch."""


def check_backend(backend: str, device: str | torch.device, precision: str) -> None:
    """Refuse combinations the ONNX backend does not run (a CPU, fp32 path)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "torch":
        return
    if torch.device(device).type != "cpu":
        raise ValueError(f"backend={backend!r} runs on the CPU only (device={device!r}); use backend='torch' on GPUs")
    if precision != "fp32":
        raise ValueError(f"backend={backend!r} needs precision='fp32' (got {precision!r}); int8 is backend='onnx-int8'")


class OnnxBackbone(nn.Module):
    """Drop-in for a transformers backbone's forward: ``(input_ids, attention_mask) ->
    .last_hidden_state``, computed by an onnxruntime session on the CPU."""

    def __init__(self, path: Path, *, threads: int | None = None):
        super().__init__()
        ort = _import("onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3  # errors only
        # No busy-waiting after a run: the PyTorch span head runs next on the same cores (spinning
        # threads made biogliner 1.2x slower than without on 2 cores).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, return_dict: bool = True, **_) -> SimpleNamespace:
        feed = {
            "input_ids": input_ids.detach().cpu().to(torch.int64).numpy(),
            "attention_mask": attention_mask.detach().cpu().to(torch.int64).numpy(),
        }
        (h,) = self.session.run(None, feed)
        return SimpleNamespace(last_hidden_state=torch.from_numpy(h))


def use_onnx(
    net: nn.Module,
    directory: Path,
    fingerprint: str,
    backend: str,
    *,
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> Path:
    """Replace ``net.text.model`` by an :class:`OnnxBackbone` of its (cached) export; the path used."""
    if backend not in ("onnx", "onnx-int8"):
        raise ValueError(f"use_onnx: backend must be 'onnx' or 'onnx-int8', not {backend!r}")
    _import("onnxruntime")
    backbone = net.text.model
    path = cached_export(backbone, Path(directory), fingerprint, int8=backend == "onnx-int8", cache_dir=cache_dir)
    net.text.model = OnnxBackbone(path, threads=threads)
    logger.info("text encoder: onnxruntime %s (%s)", backend, path)
    return path


# -- the cache ------------------------------------------------------------------------------------


def export_dir(directory: Path, cache_dir: str | Path | None = None) -> Path:
    """Where exports of the checkpoint in ``directory`` live (see module docstring)."""
    directory = Path(directory)
    if not _is_hub_snapshot(directory) and _writable(directory):
        return directory / SUBDIR
    if cache_dir is not None:
        return Path(cache_dir)
    from biogliner.model.checkpoint import default_cache_dir

    return default_cache_dir().parent / "onnx"


def export_name(fingerprint: str, *, int8: bool) -> str:
    return f"text-encoder-{fingerprint}-v{EXPORT_VERSION}{'-int8' if int8 else ''}.onnx"


def cached_export(backbone: nn.Module, directory: Path, fingerprint: str, *, int8: bool, cache_dir=None) -> Path:
    """The path of a valid export of ``backbone`` for ``fingerprint`` (exporting it if needed)."""
    from biogliner.model.checkpoint import _FileLock

    root = export_dir(directory, cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    fp32_path = root / export_name(fingerprint, int8=False)
    path = root / export_name(fingerprint, int8=int8)
    with _FileLock(root / f".{fingerprint}.lock"):
        if _valid(path, fingerprint):
            logger.info("reusing ONNX export %s", path)
            return path
        if not _valid(fp32_path, fingerprint):
            export(backbone, fp32_path, fingerprint)
        if int8:
            quantize(fp32_path, path, fingerprint)
    return path


def _valid(path: Path, fingerprint: str) -> bool:
    """``path`` exists and its metadata names ``fingerprint`` and this export version."""
    if not path.exists():
        return False
    try:
        meta = read_metadata(path)
    except Exception as exc:  # a truncated/corrupt file: onnxruntime raises several types
        logger.warning("%s: unreadable ONNX export (%s: %s); exporting again", path, type(exc).__name__, exc)
        return False
    if meta.get(_META_FP) != fingerprint or meta.get(_META_VERSION) != EXPORT_VERSION:
        logger.warning(
            "%s: export of checkpoint %s (version %s), not of %s (version %s); exporting again",
            path, meta.get(_META_FP), meta.get(_META_VERSION), fingerprint, EXPORT_VERSION,
        )
        return False
    return True


def read_metadata(path: Path) -> dict[str, str]:
    """The biogliner metadata recorded in an exported file (fingerprint, version, max diff)."""
    ort = _import("onnxruntime")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return dict(sess.get_modelmeta().custom_metadata_map)


# -- export ---------------------------------------------------------------------------------------


class _Traced(nn.Module):
    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state


def probe_batch(vocab: int, batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids and a mask whose later rows are padded (the shapes the model really sees)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, max(2, vocab), (batch, length), generator=g)
    mask = torch.ones_like(ids)
    for row in range(1, batch):
        mask[row, max(1, length - row * length // (batch + 1)) :] = 0
    return ids, mask


PROBES = ((1, 5), (3, 37), (4, 130))  # (batch, length): none is the traced (2, 16)


def export(backbone: nn.Module, path: Path, fingerprint: str) -> float:
    """Export ``backbone`` to ``path`` (fp32, dynamic batch and length) and check it on
    :data:`PROBES`; the max |difference| of the hidden states. Raises :class:`OnnxExportError`
    when over :data:`EXACT_TOL`."""
    onnx = _import("onnx")
    backbone = backbone.float().eval()
    vocab = backbone.get_input_embeddings().num_embeddings
    wrapper = _Traced(backbone).eval()
    tmp = _tmp_path(path)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter (dynamo=False)
            warnings.simplefilter("ignore", UserWarning)
            dyn = {0: "batch", 1: "length"}
            torch.onnx.export(
                wrapper,
                probe_batch(vocab, 2, 16, seed=0),
                str(tmp),
                input_names=["input_ids", "attention_mask"],
                output_names=["last_hidden_state"],
                dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "last_hidden_state": dyn},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        session = OnnxBackbone(tmp, threads=1)
        diff = 0.0
        with torch.no_grad():
            for i, (b, n) in enumerate(PROBES):
                ids, mask = probe_batch(vocab, b, n, seed=i + 1)
                want = wrapper(ids, mask)
                got = session(ids, mask).last_hidden_state
                if got.shape != want.shape:
                    raise OnnxExportError(f"{path}: shape {tuple(got.shape)} != PyTorch's {tuple(want.shape)} at batch {b}, length {n}")
                diff = max(diff, float((got - want).abs().max()))
        del session
        if not diff <= EXACT_TOL:
            raise OnnxExportError(
                f"{path}: the ONNX export differs from PyTorch by {diff:.3g} (> {EXACT_TOL}) on probe batches; "
                "use backend='torch' for this checkpoint"
            )
        model = onnx.load(str(tmp))
        _set_metadata(model, {_META_FP: fingerprint, _META_VERSION: EXPORT_VERSION, _META_DIFF: f"{diff:.3g}"})
        onnx.save(model, str(tmp))
        _publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("exported the text encoder to %s (max |diff| vs PyTorch on probes %.2g)", path, diff)
    return diff


def quantize(fp32_path: Path, path: Path, fingerprint: str) -> None:
    """int8 dynamic quantization of an fp32 export (weights int8, activations quantized per call)."""
    onnx = _import("onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = _tmp_path(path)
    root = logging.getLogger()
    root.addFilter(_quiet_quantizer)  # quantize_dynamic logs every skipped node on the root logger
    try:
        quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8)
        model = onnx.load(str(tmp))
        _set_metadata(model, {_META_FP: fingerprint, _META_VERSION: EXPORT_VERSION, "biogliner_quantization": "dynamic-int8"})
        onnx.save(model, str(tmp))
        _publish(tmp, path)
    finally:
        root.removeFilter(_quiet_quantizer)
        tmp.unlink(missing_ok=True)
    logger.info("quantized %s to int8: %s", fp32_path.name, path)


# -- helpers --------------------------------------------------------------------------------------


def _set_metadata(model, values: dict[str, str]) -> None:
    keep = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in values.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v


def _quiet_quantizer(record: logging.LogRecord) -> bool:
    return "onnxruntime" not in record.pathname


def _publish(tmp: Path, path: Path) -> None:
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; other users of a shared cache read it too
    os.replace(tmp, path)


def _tmp_path(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def _writable(directory: Path) -> bool:
    """Can files be created in ``directory`` (or in ``directory/SUBDIR``)? Tried, not guessed
    from mode bits (root ignores them; read-only mounts do not show in them)."""
    target = directory / SUBDIR
    try:
        target.mkdir(exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".probe-", dir=target)
        os.close(fd)
        os.unlink(name)
        return True
    except OSError:
        return False


def _is_hub_snapshot(directory: Path) -> bool:
    """A Hugging Face cache snapshot (``.../models--owner--name/snapshots/<rev>``): not ours to write."""
    parts = directory.resolve().parts
    return len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--")


def _import(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise ImportError(f"the ONNX backend needs {name}: {_INSTALL_HINT}") from None
