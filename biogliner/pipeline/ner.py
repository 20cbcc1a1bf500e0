"""Model stage: a callable class run in a Ray Data actor pool (one GPU per actor when there are).

``__init__`` loads the checkpoint and the run's label banks ONCE per actor, from paths/URLs
(never objects shipped through the object store); each bank is checked against the loaded
checkpoint's fingerprint. ``__call__`` runs each micro-batch row (grouped by the read task, see
:mod:`biogliner.pipeline.batching`) as one ``BiEncoder.predict_encoded`` call under every bank in
one encoder pass, and explodes it back to passage rows in its own order. ``end`` rows pass
through.
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
        backend: str = "torch",
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
            backend=backend,
            cache_dir=cache_dir,
            storage_options=bio.resolve_storage_options(model, model_storage_options) if "://" in model else None,
        )
        self.banks = [
            LabelBank.load(u, expected_fingerprint=self.model.fingerprint, storage_options=bank_storage_options) for u in bank_urls
        ]
        self.batch_size = batch_size
        self.faults = Faults(fault, fault_dir)
        self.backend = backend
        log.info("model actor ready: %s (%s), %d label bank(s)", self.model.fingerprint, backend, len(self.banks))

    def __call__(self, batch: pa.Table) -> pa.Table:
        """``stream.BATCHED`` rows -> ``stream.ANNOTATED`` rows: each ``batch`` row (one
        micro-batch, see :mod:`biogliner.pipeline.batching`) is run on its own, as one unit, and
        becomes its passages' rows in its own order; ``end`` rows pass through."""
        self.faults.hit("ner.call", once_key="actor")
        stream.require(batch, [f.name for f in stream.KEY_FIELDS] + ["passages", "n_chunks", "encoded", "info"], "annotate")
        cols: dict[str, list] = {name: [] for name in stream.ANNOTATED.names}

        def add(**row) -> None:
            for name, values in cols.items():
                values.append(row.get(name))

        kinds = batch.column("kind").to_pylist()
        sources = batch.column("source").to_pylist()
        inputs = batch.column("input").to_pylist()
        for r, kind in enumerate(kinds):
            if kind == stream.END:
                add(kind=kind, source=sources[r], input=inputs[r], info=batch.column("info")[r].as_py())
                continue
            if kind != stream.BATCH:
                raise ValueError(f"annotate: unexpected row kind {kind!r} for {sources[r]}/{inputs[r]}")
            keys = batch.column("passages")[r].as_py()
            encoded = pickle.loads(batch.column("encoded")[r].as_py())
            n_chunks = batch.column("n_chunks")[r].as_py()
            if len(encoded) != len(keys):
                raise ValueError(f"annotate: a micro-batch of {sources[r]}/{inputs[r]} has {len(keys)} keys for {len(encoded)} texts")
            if len(encoded) > 1 and n_chunks > self.batch_size:
                raise ValueError(
                    f"annotate: a micro-batch of {sources[r]}/{inputs[r]} holds {n_chunks} chunks, more than batch_size "
                    f"{self.batch_size}: it was grouped for another batch size"
                )
            out = self.model.predict_encoded(encoded, self.banks, batch_size=self.batch_size)  # one forward
            for key, per_bank in zip(keys, out):
                add(
                    kind=stream.PASSAGE,
                    source=sources[r],
                    input=inputs[r],
                    entities=[
                        {"bank": b, "start": e.start, "end": e.end, "text": e.text, "label": e.label, "score": e.score}
                        for b, ents in enumerate(per_bank)
                        for e in ents
                    ],
                    **key,
                )
        return pa.Table.from_pydict(cols, schema=stream.ANNOTATED)
