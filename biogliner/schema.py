"""The one schema module: the records that flow through biogliner and the Arrow schemas of its tables.

Readers yield :class:`Document`, :class:`Deletion` and :class:`Skip` events; the model yields
:class:`Entity` objects. Every output table has an explicit ``pyarrow.Schema`` here, carrying
``SCHEMA_VERSION`` in its metadata: writers never infer a schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

SCHEMA_VERSION = "1"

Source = Literal["pubmed", "pmc"]


@dataclass(frozen=True, slots=True)
class Passage:
    """One unit of NER input: a section name (``title``, ``abstract``, ``abstract:METHODS``,
    ``other_abstract:fre``, ``body:Introduction``, ``caption:fig``...) and its exact text."""

    section: str
    text: str


@dataclass(frozen=True, slots=True)
class Document:
    """An upsert event: a citation or article version as found at ``source_file[position]``."""

    doc_id: str  # "pubmed:12345" or "pmc:PMC123456.1"
    source: Source
    source_file: str  # base name of the input file, e.g. "pubmed26n0001.xml.gz"
    position: int  # 0-based index of the record in its file
    pmid: int | None = None
    version: int | None = None  # PubMed PMID@Version, or the PMC article version
    pmcid: str | None = None  # "PMC123456"
    doi: str | None = None
    status: str | None = None  # MedlineCitation@Status, or PMC article-type
    language: str | None = None
    year: int | None = None
    journal: str | None = None
    license: str | None = None
    passages: tuple[Passage, ...] = ()
    op: Literal["upsert"] = field(default="upsert", init=False)


@dataclass(frozen=True, slots=True)
class Deletion:
    """A deletion event (PubMed ``<DeleteCitation>``): applied after the file's records."""

    doc_id: str
    source: Source
    source_file: str
    position: int
    pmid: int | None = None
    version: int | None = None
    op: Literal["delete"] = field(default="delete", init=False)


@dataclass(frozen=True, slots=True)
class Skip:
    """A record the reader did not turn into a document, and why (counted, never silent)."""

    source_file: str
    position: int
    record_id: str | None  # whatever identifies the record, when known
    reason: str  # short machine-friendly reason, e.g. "book_article", "not_open_access"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity mention; ``start``/``end`` are character offsets into the text it was found in."""

    start: int
    end: int
    text: str
    label: str
    score: float


Event = Document | Deletion | Skip


def _schema(fields: list[pa.Field], table: str) -> pa.Schema:
    return pa.schema(fields, metadata={"biogliner.schema_version": SCHEMA_VERSION, "biogliner.table": table})


# Partition columns (hive layout ``source=.../input=...``) are part of each table's logical schema;
# ``input`` is the input file's name without compression/XML suffixes, e.g. "pubmed26n0001".
PARTITION_FIELDS = [pa.field("source", pa.string(), nullable=False), pa.field("input", pa.string(), nullable=False)]

DOCUMENTS = _schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("pmid", pa.int64()),
        pa.field("version", pa.int32()),
        pa.field("pmcid", pa.string()),
        pa.field("doi", pa.string()),
        pa.field("status", pa.string()),
        pa.field("language", pa.string()),
        pa.field("year", pa.int32()),
        pa.field("journal", pa.string()),
        pa.field("license", pa.string()),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
        pa.field("n_passages", pa.int32(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
    ],
    "documents",
)

PASSAGES = _schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("version", pa.int32()),
        pa.field("position", pa.int64(), nullable=False),  # the document's record index in its input file
        pa.field("passage_index", pa.int32(), nullable=False),
        pa.field("section", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
    ],
    "passages",
)

ENTITIES = _schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("version", pa.int32()),
        pa.field("position", pa.int64(), nullable=False),  # the document's record index in its input file
        pa.field("passage_index", pa.int32(), nullable=False),
        pa.field("start", pa.int32(), nullable=False),
        pa.field("end", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
        pa.field("label_set", pa.string(), nullable=False),  # "name@version"
        pa.field("model", pa.string(), nullable=False),  # checkpoint fingerprint
        pa.field("run_id", pa.string(), nullable=False),
    ],
    "entities",
)

DELETIONS = _schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("pmid", pa.int64()),
        pa.field("version", pa.int32()),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
    ],
    "deletions",
)

ERRORS = _schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("position", pa.int64()),  # null when the error is about the whole file
        pa.field("record_id", pa.string()),
        pa.field("kind", pa.string(), nullable=False),  # "skip" | "record_error" | "file_error"
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.large_string()),
        pa.field("run_id", pa.string(), nullable=False),
    ],
    "errors",
)

TABLES: dict[str, pa.Schema] = {
    "documents": DOCUMENTS,
    "passages": PASSAGES,
    "entities": ENTITIES,
    "deletions": DELETIONS,
    "errors": ERRORS,
}
