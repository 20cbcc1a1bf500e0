"""The rows that flow between the pipeline's stages (not an output table).

A parse task emits, per input file, blocks of ``passage`` rows (one per non-blank passage, for
NER) and finally one ``end`` row carrying, as JSON in ``info``, what the task wrote and counted.
Tokenising adds ``encoded`` (a pickled ``EncodedText``) and drops ``text``; the model stage
replaces ``encoded`` by ``entities``. ``end`` rows pass through every stage unchanged, so the
driver learns how many passages to expect for each input whatever order rows arrive in.
"""

from __future__ import annotations

import pyarrow as pa

PASSAGE = "passage"
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
ENCODED = pa.schema([*KEY_FIELDS, pa.field("n_tokens", pa.int32()), pa.field("encoded", pa.large_binary()), INFO_FIELD])

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


def require(batch: pa.Table, names: list[str], stage: str) -> None:
    """Fail with the stage name and the missing columns."""
    missing = [n for n in names if n not in batch.column_names]
    if missing:
        raise KeyError(f"{stage}: input batch lacks columns {missing} (has {batch.column_names})")
