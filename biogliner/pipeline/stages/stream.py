"""The rows that flow between the pipeline's stages (not an output table).

A parse task emits, per input file, blocks of ``passage`` rows (one per non-blank passage, for
NER) and finally one ``end`` row carrying, as JSON in ``info``, what the task wrote and counted.
In the same read task, :mod:`biogliner.pipeline.stages.batching` tokenises the passages and groups them
into micro-batches: one ``batch`` row per micro-batch (``BATCHED``: the passages' keys in
``passages``, their pickled ``EncodedText`` list in ``encoded``), so that the model stage's batch
composition is a function of the input alone. The model stage runs each ``batch`` row as one
unit and explodes it back to ``passage`` rows with ``entities`` (``ANNOTATED``). ``end`` rows
pass through every stage unchanged, so the driver learns how many passages to expect for each
input whatever order rows arrive in.
"""

from __future__ import annotations

import pyarrow as pa

PASSAGE = "passage"
BATCH = "batch"
END = "end"

KEY_FIELDS = [
    pa.field("kind", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("input", pa.string(), nullable=False),
    pa.field("position", pa.int64()),
    pa.field("doc_id", pa.string()),
    pa.field("version", pa.int32()),
    pa.field("passage_index", pa.int32()),
]
INFO_FIELD = pa.field("info", pa.string())

PARSED = pa.schema([*KEY_FIELDS, pa.field("text", pa.large_string()), INFO_FIELD])
# the key of one passage inside a ``batch`` row (the same fields as a ``passage`` row's key)
PASSAGE_KEY = pa.struct([f for f in KEY_FIELDS if f.name in ("position", "doc_id", "version", "passage_index")])
BATCHED = pa.schema(
    [
        *KEY_FIELDS,  # on ``batch`` rows position is the micro-batch's sequence number in its unit, doc_id .. passage_index are null
        pa.field("passages", pa.list_(PASSAGE_KEY)),
        pa.field("n_chunks", pa.int32()),  # encoder inputs of the micro-batch (<= batch size unless one passage)
        pa.field("n_tokens", pa.int32()),  # subword tokens of the micro-batch, for logs and tests
        pa.field("encoded", pa.large_binary()),  # pickled list[EncodedText], in ``passages`` order
        INFO_FIELD,
    ]
)

ENTITY_STRUCT = pa.struct(
    [
        pa.field("bank", pa.int16(), nullable=False),
        pa.field("start", pa.int32(), nullable=False),
        pa.field("end", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
    ]
)
ANNOTATED = pa.schema([*KEY_FIELDS, pa.field("entities", pa.list_(ENTITY_STRUCT)), INFO_FIELD])

WRITTEN_KIND = "written"
# What the model stage sends to the driver: per unit and call, one ``written`` row naming the
# entity files it wrote (``info``: {"files": {label set: DataFile}, "per_label": ..., "passages": n}),
# the micro-batches they cover (``mbs``) and, for the rare rewrite after a retry, each
# micro-batch's passage keys (``keys``: pickled {mb: [(doc_id, position, passage_index)]}); and
# the unit's ``end`` row, passed through. No entity row travels to the driver.
WRITTEN = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("input", pa.string(), nullable=False),
        pa.field("mbs", pa.list_(pa.int32())),
        pa.field("keys", pa.large_binary()),
        INFO_FIELD,
    ]
)


def require(batch: pa.Table, names: list[str], stage: str) -> None:
    """Fail with the stage name and the missing columns."""
    missing = [n for n in names if n not in batch.column_names]
    if missing:
        raise KeyError(f"{stage}: input batch lacks columns {missing} (has {batch.column_names})")
