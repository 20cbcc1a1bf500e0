"""Model stage: a callable class run in a Ray Data actor pool (one GPU per actor when there are).

``__init__`` loads the checkpoint and the run's label banks ONCE per actor, from paths/URLs
(never objects shipped through the object store); each bank is checked against the loaded
checkpoint's fingerprint. ``__call__`` runs each micro-batch row (grouped by the read task, see
:mod:`biogliner.pipeline.stages.batching`) as one ``BiEncoder.predict_encoded`` call under every bank in
one encoder pass, writes the entities of each unit in the call as one Delta data file per label
set (:func:`biogliner.store.delta.write_data_file`: invisible until committed) and returns one
small ``written`` row per unit for the driver. ``end`` rows pass through.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections import Counter
from dataclasses import asdict

import pyarrow as pa

from biogliner.pipeline.faults import Faults
from biogliner.pipeline.stages import stream
from biogliner.schema import ENTITIES
from biogliner.store.delta import write_data_file

log = logging.getLogger(__name__)


class Annotate:
    def __init__(
        self,
        model: str,
        bank_urls: list[str],
        *,
        output: str,
        output_storage_options: dict | None,
        run_id: str,
        bank_ids: list[str],
        unit_sets: dict[str, list[str]],
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
        if len(bank_ids) != len(self.banks):
            raise ValueError(f"annotate: {len(bank_ids)} label-set ids for {len(self.banks)} banks")
        self.bank_ids = list(bank_ids)
        self.unit_sets = {k: set(v) for k, v in unit_sets.items()}  # "source/input" -> label sets to write
        self.output = output
        self.output_storage_options = output_storage_options
        self.run_id = run_id
        self.batch_size = batch_size
        self.faults = Faults(fault, fault_dir)
        self.backend = backend
        log.info("model actor ready: %s (%s), %d label bank(s)", self.model.fingerprint, backend, len(self.banks))

    def __call__(self, batch: pa.Table) -> pa.Table:
        """``stream.BATCHED`` rows -> ``stream.WRITTEN`` rows: each ``batch`` row (one
        micro-batch, see :mod:`biogliner.pipeline.stages.batching`) is run on its own, as one unit of
        scoring; the entities of each unit in the call are written as one file per label set,
        and one ``written`` row names them; ``end`` rows pass through."""
        self.faults.hit("ner.call", once_key="actor")
        stream.require(batch, [f.name for f in stream.KEY_FIELDS] + ["passages", "n_chunks", "encoded", "info"], "annotate")
        out: dict[str, list] = {name: [] for name in stream.WRITTEN.names}
        units: dict[tuple[str, str], _UnitRows] = {}

        kinds = batch.column("kind").to_pylist()
        sources = batch.column("source").to_pylist()
        inputs = batch.column("input").to_pylist()
        seqs = batch.column("position").to_pylist()
        ends = []
        for r, kind in enumerate(kinds):
            if kind == stream.END:
                ends.append(dict(kind=kind, source=sources[r], input=inputs[r], info=batch.column("info")[r].as_py()))
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
            predicted = self.model.predict_encoded(encoded, self.banks, batch_size=self.batch_size)  # one forward
            u = units.setdefault((sources[r], inputs[r]), _UnitRows(len(self.banks)))
            u.add(seqs[r], keys, predicted)
        for (source, input_), u in units.items():
            wanted = self.unit_sets.get(f"{source}/{input_}", set(self.bank_ids))
            files, per_label = {}, {}
            for b, ls in enumerate(self.bank_ids):
                if ls not in wanted:
                    continue
                table = u.table(b, ls, self.model.fingerprint, self.run_id)
                per_label[ls] = Counter(table.column("label").to_pylist())
                if table.num_rows:
                    files[ls] = asdict(write_data_file(self.output, "entities", table, {"source": source, "input": input_}, self.output_storage_options))
            out["kind"].append(stream.WRITTEN_KIND)
            out["source"].append(source)
            out["input"].append(input_)
            out["mbs"].append(u.mbs)
            out["keys"].append(pickle.dumps(u.keys, protocol=pickle.HIGHEST_PROTOCOL))
            out["info"].append(json.dumps({"files": files, "per_label": {k: dict(v) for k, v in per_label.items()}, "passages": u.passages}))
        for e in ends:  # after the written rows of this call (the driver does not rely on it)
            for name in stream.WRITTEN.names:
                out[name].append(e.get(name))
        self.faults.hit("ner.after_write", once_key="actor")
        return pa.Table.from_pydict(out, schema=stream.WRITTEN)


class _UnitRows:
    """One unit's entity rows of one call, column-wise, per bank."""

    def __init__(self, n_banks: int):
        self.mbs: list[int] = []
        self.keys: dict[int, list[tuple]] = {}
        self.passages = 0
        self.cols = [{k: [] for k in ("doc_id", "version", "position", "passage_index", "start", "end", "text", "label", "score")} for _ in range(n_banks)]

    def add(self, seq: int, keys: list[dict], predicted: list) -> None:
        self.mbs.append(seq)
        self.keys[seq] = [(k["doc_id"], k["position"], k["passage_index"]) for k in keys]
        self.passages += len(keys)
        for key, per_bank in zip(keys, predicted):
            for b, ents in enumerate(per_bank):
                c = self.cols[b]
                for e in ents:
                    c["doc_id"].append(key["doc_id"])
                    c["version"].append(key["version"])
                    c["position"].append(key["position"])
                    c["passage_index"].append(key["passage_index"])
                    c["start"].append(e.start)
                    c["end"].append(e.end)
                    c["text"].append(e.text)
                    c["label"].append(e.label)
                    c["score"].append(e.score)

    def table(self, b: int, label_set: str, model: str, run_id: str) -> pa.Table:
        c = self.cols[b]
        n = len(c["doc_id"])
        t = pa.table(
            {
                **{k: pa.array(v, ENTITIES.field(k).type) for k, v in c.items()},
                "label_set": pa.array([label_set] * n, pa.string()),
                "model": pa.array([model] * n, pa.string()),
                "run_id": pa.array([run_id] * n, pa.string()),
            }
        ).select(ENTITIES.names)
        # a deterministic row order within the file, whatever order the micro-batches came in
        keys = [("doc_id", "ascending"), ("position", "ascending"), ("passage_index", "ascending"), ("start", "ascending"), ("end", "ascending"), ("label", "ascending")]
        return t.sort_by(keys).cast(ENTITIES)
