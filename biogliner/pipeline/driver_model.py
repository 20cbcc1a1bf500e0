"""The run's checkpoint on the driver, before Ray: its fingerprint and, when there is work, the model.

The plan compares the fingerprint with what the output holds (:mod:`biogliner.pipeline.plan`);
:meth:`DriverModel.fingerprint` reads the config and the weights only (no network is built), the
cheapest way to the same value as :attr:`biogliner.model.BiEncoder.fingerprint`. When inputs are
to be annotated, :meth:`DriverModel.load` loads the model on CPU for embedding the label sets
(:func:`biogliner.pipeline.banks.prepare_banks`). Both run before Ray starts, so an unreachable
hub, a missing directory or a corrupt checkpoint fails in seconds, with :data:`OFFLINE_HINT`.
"""

from __future__ import annotations

import logging

from biogliner import io as bio

log = logging.getLogger(__name__)

OFFLINE_HINT = (
    "Without hub access, give a local checkpoint directory or an s3:// URL with --model or "
    '$BIOGLINER_MODEL (README.md, section "Offline"); `python scripts/make_tiny_checkpoint.py DIR` '
    "builds a tiny random checkpoint for a smoke test"
)


class DriverModel:
    """Resolves ``ref`` once (hub download, object-store copy or local directory); a failure is a
    :class:`~biogliner.model.CheckpointError` whose message ends with :data:`OFFLINE_HINT`."""

    def __init__(self, ref: str, *, revision: str | None = None, cache_dir: str | None = None, storage_options=None):
        self.ref = ref
        self.revision = revision
        self.cache_dir = cache_dir
        self.storage_options = bio.resolve_storage_options(ref, storage_options) if "://" in ref else None
        self._directory = None
        self._fingerprint: str | None = None

    def directory(self):
        if self._directory is None:
            from biogliner.model import CheckpointError
            from biogliner.model.checkpoint import resolve

            try:
                self._directory = resolve(self.ref, revision=self.revision, cache_dir=self.cache_dir, storage_options=self.storage_options)
            except CheckpointError as exc:
                if 'section "Offline"' in str(exc) and "make_tiny_checkpoint.py" in str(exc):
                    raise  # the model package's message already says it
                raise CheckpointError(f"{exc} {OFFLINE_HINT}.") from exc
        return self._directory

    def fingerprint(self) -> str:
        """What ``BiEncoder.fingerprint`` is for this checkpoint, from its config and weights alone."""
        if self._fingerprint is None:
            from biogliner.model.checkpoint import fingerprint, load_state_dict
            from biogliner.model.config import ModelConfig

            directory = self.directory()
            config = ModelConfig.from_file(directory / "gliner_config.json")
            state, _ = load_state_dict(directory)
            self._fingerprint = fingerprint(config.canonical_json(), state, directory)
            log.info("model %s: fingerprint %s", self.ref, self._fingerprint)
        return self._fingerprint

    def load(self, backend: str = "torch"):
        """The ``BiEncoder`` on CPU, its fingerprint checked against the one the plan compared.

        ``backend`` ``onnx``/``onnx-int8``: the text encoder's export is made (or found in its
        cache) and checked against PyTorch here, before Ray, so a checkpoint that does not export
        exactly fails in seconds and the model actors of this node reuse the cached file. The
        backend never changes the fingerprint: same weights, same model identity for the plan;
        it is recorded with each commit's scoring settings instead (``batching.scoring``)."""
        from biogliner.model import BiEncoder

        encoder = BiEncoder.from_directory(self.directory(), device="cpu", source=self.ref, backend=backend)
        if self._fingerprint is not None and encoder.fingerprint != self._fingerprint:
            raise RuntimeError(f"{self.ref}: the checkpoint changed while the run was planned ({self._fingerprint} -> {encoder.fingerprint})")
        self._fingerprint = encoder.fingerprint
        return encoder
