"""Model stage: a callable class run in a Ray Data actor pool (one GPU per actor when there are).

``__init__`` loads the checkpoint and the run's label banks ONCE per actor, from paths/URLs
(never objects shipped through the object store); each bank is checked against the loaded
checkpoint's fingerprint. ``__call__`` sorts the batch's passages by token count (less padding),
runs ``BiEncoder.predict_encoded`` under every bank in one encoder pass, and restores the order.
``end`` rows pass through.
"""

from __future__ import annotations

import logging
import pickle

import pyarrow as pa

from biogliner.pipeline import stream
from biogliner.pipeline.faults import Faults

log = logging.getLogger(__name__)


class Annotate:
    def __init__(
        self,
        model: str,
        bank_urls: list[str],
        *,
        batch_size: int = 8,
        device: str | None = None,
        precision: str = "fp32",
        revision: str | None = None,
        cache_dir: str | None = None,
        model_storage_options: dict | None = None,
        bank_storage_options: dict | None = None,
        fault: str | None = None,
        fault_dir: str | None = None,
        threads: int | None = None,
    ):
        from biogliner import io as bio
        from biogliner.model import BiEncoder, LabelBank

        if threads:
            import torch

            torch.set_num_threads(threads)

        self.model = BiEncoder.load(
            model,
            revision=revision,
            device=device,
            precision=precision,
            cache_dir=cache_dir,
            storage_options=bio.resolve_storage_options(model, model_storage_options) if "://" in model else None,
        )
        self.banks = [
            LabelBank.load(u, expected_fingerprint=self.model.fingerprint, storage_options=bank_storage_options) for u in bank_urls
        ]
        self.batch_size = batch_size
        self.faults = Faults(fault, fault_dir)
        log.info("model actor ready: %s, %d label bank(s)", self.model.fingerprint, len(self.banks))

    def __call__(self, batch: pa.Table) -> pa.Table:
        self.faults.hit("ner.call", once_key="actor")
        stream.require(batch, [f.name for f in stream.KEY_FIELDS] + ["n_tokens", "encoded", "info"], "annotate")
        kinds = batch.column("kind").to_pylist()
        idx = [i for i, k in enumerate(kinds) if k == stream.PASSAGE]
        entities: list[list[dict] | None] = [None] * len(kinds)
        if idx:
            blobs = batch.column("encoded").to_pylist()
            n_tokens = batch.column("n_tokens").to_pylist()
            order = sorted(idx, key=lambda i: (n_tokens[i] or 0, i))  # length-sorted batches
            encoded = [pickle.loads(blobs[i]) for i in order]
            out = self.model.predict_encoded(encoded, self.banks, batch_size=self.batch_size)
            for i, per_bank in zip(order, out):  # restore the batch order
                entities[i] = [
                    {"bank": b, "start": e.start, "end": e.end, "text": e.text, "label": e.label, "score": e.score}
                    for b, ents in enumerate(per_bank)
                    for e in ents
                ]
        cols = {f.name: batch.column(f.name) for f in stream.KEY_FIELDS}
        cols["entities"] = pa.array(entities, pa.list_(stream.ENTITY_STRUCT))
        cols["info"] = batch.column("info")
        return pa.Table.from_pydict(cols, schema=stream.ANNOTATED)
