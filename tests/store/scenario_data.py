"""Test data for the store tests: small output roots written through ``Store.write_table`` +
``Store.commit`` from real ``Document``/``Deletion``/``Entity`` records (no model, no Ray)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
from biogliner.schema import TABLES, Deletion, Document, Entity, Passage
from biogliner.store import layout
from biogliner.store.manifest import LabelSetCommit, ManifestEntry, ParseCommit, Store

LABEL_SET = "test@1"
MODEL = "fp-test"


def doc_rows(docs: list[Document], run_id: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "doc_id": d.doc_id, "pmid": d.pmid, "version": d.version, "pmcid": d.pmcid, "doi": d.doi,
                "status": d.status, "language": d.language, "year": d.year, "journal": d.journal,
                "license": d.license, "source_file": d.source_file, "position": d.position,
                "n_passages": len(d.passages), "run_id": run_id,
            }
            for d in docs
        ],
        schema=TABLES["documents"],
    )


def passage_rows(docs: list[Document], run_id: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"doc_id": d.doc_id, "version": d.version, "position": d.position, "passage_index": i, "section": p.section,
             "text": p.text, "run_id": run_id}
            for d in docs
            for i, p in enumerate(d.passages)
        ],
        schema=TABLES["passages"],
    )


def deletion_rows(dels: list[Deletion], run_id: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"doc_id": x.doc_id, "pmid": x.pmid, "version": x.version, "source_file": x.source_file,
             "position": x.position, "run_id": run_id}
            for x in dels
        ],
        schema=TABLES["deletions"],
    )


def find_mentions(docs: list[Document], vocab: dict[str, str]) -> list[tuple[str, int | None, int, Entity, int]]:
    """A deterministic stand-in for the model: every occurrence of a vocabulary word, any case
    (the entity text is the passage's own slice)."""
    out = []
    for d in docs:
        for i, p in enumerate(d.passages):
            low = p.text.lower()
            for word, label in vocab.items():
                start = low.find(word.lower())
                while start >= 0:
                    end = start + len(word)
                    out.append((d.doc_id, d.version, i, Entity(start, end, p.text[start:end], label, 0.9), d.position))
                    start = low.find(word.lower(), start + 1)
    return out


def entity_rows(mentions, run_id: str, label_set: str = LABEL_SET, model: str = MODEL) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"doc_id": doc_id, "version": version, "position": pos, "passage_index": pi, "start": e.start, "end": e.end,
             "text": e.text, "label": e.label, "score": e.score, "label_set": label_set, "model": model,
             "run_id": run_id}
            for doc_id, version, pi, e, pos in mentions
        ],
        schema=TABLES["entities"],
    )


VOCAB = {"asthma": "disease", "diabetes": "disease", "aspirin": "chemical", "insulin": "chemical", "BRCA1": "gene"}


@dataclass
class InputSpec:
    source: str
    input: str
    docs: list[Document] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # rows of the errors table, less run_id


def write_input(store: Store, spec: InputSpec, run_id: str, *, commit: bool = True, label_sets=((LABEL_SET, MODEL),)) -> ManifestEntry:
    files: dict[str, list[str]] = {}
    files["documents"] = [store.write_table("documents", spec.source, spec.input, run_id, doc_rows(spec.docs, run_id))]
    files["passages"] = [store.write_table("passages", spec.source, spec.input, run_id, passage_rows(spec.docs, run_id))]
    if spec.deletions:
        files["deletions"] = [store.write_table("deletions", spec.source, spec.input, run_id, deletion_rows(spec.deletions, run_id))]
    if spec.errors:
        rows = pa.Table.from_pylist([{**e, "run_id": run_id} for e in spec.errors], schema=TABLES["errors"])
        files["errors"] = [store.write_table("errors", spec.source, spec.input, run_id, rows)]
    sets = {}
    for ls_id, model in label_sets:
        mentions = find_mentions(spec.docs, VOCAB)
        rel = store.write_table(
            "entities", spec.source, spec.input, layout.entities_stem(ls_id, run_id), entity_rows(mentions, run_id, ls_id, model)
        )
        sets[ls_id] = LabelSetCommit(run_id=run_id, model=model, files=[rel], counts={"entities": len(mentions)})
    entry = ManifestEntry(
        input=spec.input, source=spec.source, url=f"file:///inputs/{spec.input}.xml.gz", status="committed",
        run_id=run_id, parse=ParseCommit(run_id=run_id, files=files, counts={"documents": len(spec.docs)}),
        label_sets=sets,
    )
    if commit:
        store.commit(entry)
    return entry


def pm(pmid: int, file: str, pos: int, title: str, abstract: str = "", year: int = 2020, version: int = 1) -> Document:
    passages = (Passage("title", title),) + ((Passage("abstract", abstract),) if abstract else ())
    return Document(
        doc_id=f"pubmed:{pmid}", source="pubmed", source_file=f"{file}.xml.gz", position=pos, pmid=pmid,
        version=version, year=year, journal="J Test", language="eng", status="MEDLINE", passages=passages,
    )


def pm_del(pmid: int, file: str, pos: int) -> Deletion:
    return Deletion(f"pubmed:{pmid}", "pubmed", f"{file}.xml.gz", pos, pmid=pmid, version=1)


def pmc(pmcid: str, version: int, title: str, body: str, year: int = 2021, pmid: int | None = None) -> Document:
    return Document(
        doc_id=f"pmc:{pmcid}.{version}", source="pmc", source_file=f"{pmcid}.{version}.xml", position=0,
        pmid=pmid, pmcid=pmcid, version=version, year=year, journal="PMC J", license="CC BY",
        passages=(Passage("title", title), Passage("body:Results", body)),
    )


def scenario_inputs() -> list[InputSpec]:
    """A baseline (two files), two nights of updates (revisions, deletions, a delete of a PMID
    never seen, a re-add after a delete, a record and its delete in one file) and PMC versions."""
    b1, b2, u3, u4 = "pubmed26n0001", "pubmed26n0002", "pubmed26n0003", "pubmed26n0004"
    return [
        InputSpec("pubmed", b1, docs=[
            pm(1, b1, 0, "Aspirin in asthma.", "Aspirin worsened asthma in adults. BRCA1 was not measured.", 2019),
            pm(2, b1, 1, "Insulin v1.", "diabetes v1 text.", 2019),
            pm(3, b1, 2, "Record three mentions asthma.", year=2018),
            pm(4, b1, 3, "Diabetes and insulin.", "Insulin lowers glucose in diabetes. Aspirin did not.", 2020),
            pm(5, b1, 4, "Five about asthma.", year=2020),
        ]),
        InputSpec("pubmed", b2, docs=[
            pm(6, b2, 0, "Six v1 asthma.", year=2021),
            pm(7, b2, 1, "Seven v1 diabetes.", year=2021),
        ]),
        # night 1
        InputSpec("pubmed", u3, docs=[
            pm(2, u3, 0, "Insulin v2.", "diabetes v2 text.", 2019),
            pm(6, u3, 1, "Six v2 asthma and aspirin.", year=2022),
            pm(8, u3, 2, "Eight new asthma.", year=2022),
        ], deletions=[pm_del(3, u3, 3), pm_del(999, u3, 4)], errors=[
        {"source_file": f"{u3}.xml.gz", "position": 5, "record_id": "pubmed:1234", "kind": "skip",
         "reason": "book_article", "detail": "PubmedBookArticle"},
    ]),
        # night 2
        InputSpec("pubmed", u4, docs=[
            pm(2, u4, 0, "Insulin v3.", "diabetes v3 text. Aspirin was co-administered with insulin.", 2019),
            pm(3, u4, 1, "Three re-added asthma.", year=2018),
            pm(7, u4, 2, "Seven v2 diabetes.", year=2021),
        ], deletions=[pm_del(5, u4, 3), pm_del(8, u4, 4), pm_del(7, u4, 5)]),
        InputSpec("pmc", "PMC100.1", docs=[pmc("PMC100", 1, "PMC v1 asthma", "aspirin v1 body")]),
        InputSpec("pmc", "PMC100.2", docs=[pmc("PMC100", 2, "PMC v2 asthma", "aspirin and insulin v2 body")]),
        InputSpec("pmc", "PMC200.1", docs=[pmc("PMC200", 1, "Other diabetes", "β-cell loss; insulin body", pmid=4)]),
    ]


EXPECTED_CURRENT = {
    "pubmed:1": "pubmed26n0001",
    "pubmed:2": "pubmed26n0004",
    "pubmed:3": "pubmed26n0004",
    "pubmed:4": "pubmed26n0001",
    "pubmed:6": "pubmed26n0003",
    "pmc:PMC100.2": "PMC100.2",
    "pmc:PMC200.1": "PMC200.1",
}


def build_scenario(root: str, storage_options=None) -> Store:
    """Commit the scenario in a scrambled order (night 2 before night 1): the views must follow
    file order, not commit order. Also leaves an uncommitted 'crashed run' file behind."""
    store = Store(root, storage_options)
    specs = {s.input: s for s in scenario_inputs()}
    for name in ["pubmed26n0002", "PMC100.2", "pubmed26n0001", "pubmed26n0004", "PMC200.1", "pubmed26n0003", "PMC100.1"]:
        write_input(store, specs[name], run_id=f"run-{name[-4:]}")
    crashed = InputSpec("pubmed", "pubmed26n0005", docs=[pm(1, "pubmed26n0005", 0, "Ghost revision asthma.")],
                        deletions=[pm_del(4, "pubmed26n0005", 1)])
    write_input(store, crashed, run_id="run-crashed", commit=False)
    # and a crashed re-run's file inside a committed partition
    write_input(store, specs["pubmed26n0001"], run_id="run-crashed-b1", commit=False)
    return store
