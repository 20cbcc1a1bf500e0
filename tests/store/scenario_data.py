"""Test data for the store tests: small output roots of Delta tables committed through
``Output.commit_tables`` (one call per unit: its parse tables and one entities table per label
set) from real ``Document``/``Deletion``/``Entity`` records (no model, no Ray)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
from biogliner.schema import TABLES, Deletion, Document, Entity, Passage
from biogliner.store.delta import Unit, write_data_file
from biogliner.store.output import ENTITIES, PARSE, Output, entities_unit_id, parse_unit_id

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


def parse_tables(spec: InputSpec, run_id: str) -> dict[str, pa.Table]:
    out = {"documents": doc_rows(spec.docs, run_id), "passages": passage_rows(spec.docs, run_id)}
    if spec.deletions:
        out["deletions"] = deletion_rows(spec.deletions, run_id)
    if spec.errors:
        out["errors"] = pa.Table.from_pylist([{**e, "run_id": run_id} for e in spec.errors], schema=TABLES["errors"])
    return out


def entity_tables(spec: InputSpec, run_id: str, label_sets) -> dict[str, pa.Table]:
    mentions = find_mentions(spec.docs, VOCAB)
    return {ls_id: entity_rows(mentions, run_id, ls_id, model) for ls_id, model in label_sets}


def write_input(
    output: Output,
    spec: InputSpec,
    run_id: str,
    *,
    label_sets=((LABEL_SET, MODEL),),
    parse: bool = True,
    parse_version: int = 1,
    entity_versions: dict[str, int] | None = None,
) -> dict[str, bool]:
    """Commit one unit (the input ``spec``): its parse tables (unless ``parse=False``: a
    re-annotation) and one entities table per ``(label set, model)``."""
    models = {m for _, m in label_sets}
    return output.commit_tables(
        spec.source, spec.input, run_id,
        parse=parse_tables(spec, run_id) if parse else None,
        entities=entity_tables(spec, run_id, label_sets),
        parse_version=parse_version,
        entity_versions=entity_versions,
        model=models.pop() if len(models) == 1 else None,
        inputs=[{"input": spec.input, "url": f"file:///inputs/{spec.input}.xml.gz", "status": "committed"}],
        counts={"documents": len(spec.docs)},
    )


class Crash(RuntimeError):
    """Raised by :func:`crash_before_commits`'s fault: the process 'dies' there."""


def unit_batch(output: Output, spec: InputSpec, run_id: str, *, label_sets=((LABEL_SET, MODEL),),
               parse_version: int = 1, entity_version: int = 1) -> list[Unit]:
    """The units ``write_input`` would commit, written as files but not committed."""
    pv = {"source": spec.source, "input": spec.input}
    root, so = output.root_url, output.storage_options
    common = {"source": spec.source, "input": spec.input, "run_id": run_id, "status": "committed"}
    files = [write_data_file(root, t, rows, pv, so) for t, rows in parse_tables(spec, run_id).items() if rows.num_rows]
    units = [Unit(parse_unit_id(spec.source, spec.input), parse_version, files,
                  {**common, "kind": PARSE, "inputs": [{"input": spec.input, "status": "committed"}]})]
    for ls_id, rows in entity_tables(spec, run_id, label_sets).items():
        f = [write_data_file(root, "entities", rows, pv, so)] if rows.num_rows else []
        units.append(Unit(entities_unit_id(spec.source, spec.input, ls_id), entity_version, f,
                          {**common, "kind": ENTITIES, "label_set": ls_id, "model": dict(label_sets)[ls_id]}))
    return units


def crash_before_commits(output: Output, spec: InputSpec, run_id: str, **kw) -> list[Unit]:
    """Commit a unit's data tables and 'crash' before its ``commits`` row: its files are in the
    data tables' Delta logs, the unit is not committed. Returns the units (a rerun commits them)."""
    units = unit_batch(output, spec, run_id, **kw)

    def fault(point: str) -> None:
        if point == "before:commits":
            raise Crash(point)

    try:
        output.delta.commit_units(units, fault=fault)
    except Crash:
        return units
    raise AssertionError("the fault did not fire")


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


CRASHED = InputSpec("pubmed", "pubmed26n0005", docs=[pm(1, "pubmed26n0005", 0, "Ghost revision asthma.")],
                    deletions=[pm_del(4, "pubmed26n0005", 1)])


def build_scenario(root: str, storage_options=None, *, crashes: bool = True) -> Output:
    """Commit the scenario in a scrambled order (night 2 before night 1): the views must follow
    file order, not commit order. With ``crashes``, also leaves two crashed runs' rows in the
    data tables' Delta logs, without their ``commits`` rows: a night 3 (``pubmed26n0005``,
    revising pubmed:1 and deleting pubmed:4) and a re-commit of ``pubmed26n0001`` at version 2."""
    output = Output(root, storage_options)
    specs = {s.input: s for s in scenario_inputs()}
    for name in ["pubmed26n0002", "PMC100.2", "pubmed26n0001", "pubmed26n0004", "PMC200.1", "pubmed26n0003", "PMC100.1"]:
        write_input(output, specs[name], run_id=f"run-{name[-4:]}")
    if crashes:
        crash_before_commits(output, CRASHED, "run-crashed")
        crash_before_commits(output, specs["pubmed26n0001"], "run-crashed-b1", parse_version=2, entity_version=2)
    return output
