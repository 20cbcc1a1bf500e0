"""Rows of synthetic units for the current-state tests (test_current, test_refresh)."""

from __future__ import annotations

import random


def unit_rows(source: str, input_: str, docs, dels, run: str, rng: random.Random, *, tag: str) -> dict[str, list[dict]]:
    """``documents``/``passages``/``deletions`` rows of one unit: ``docs`` = [(pmid or pmcid, version,
    position)] (a PMC key ``None``: an article without a pmcid), ``dels`` = [(doc_id, position)];
    two passages per document, whose text starts with ``tag``."""
    drows, prows, xrows = [], [], []
    for key, version, pos in docs:
        if source == "pubmed":
            doc_id, pmid, pmcid = f"pubmed:{key}", key, None
        else:
            doc_id = f"pmc:{key}.{version}" if key else f"pmc:noid-{input_}-{pos}"
            pmid, pmcid = None, key
        drows.append(dict(doc_id=doc_id, pmid=pmid, version=version, pmcid=pmcid, doi=None, status="s", language="eng",
                          year=2000 + rng.randrange(5), journal="J", license=None, source_file=f"{input_}.xml.gz",
                          position=pos, n_passages=2, run_id=run))
        for p in range(2):
            prows.append(dict(doc_id=doc_id, version=version, position=pos, passage_index=p, section=("title", "abstract")[p],
                              text=f"{tag} {doc_id} {pos} {p}", run_id=run))
    for doc_id, pos in dels:
        pmid = int(doc_id.split(":")[1]) if source == "pubmed" else None
        xrows.append(dict(doc_id=doc_id, pmid=pmid, version=None, source_file=f"{input_}.xml.gz", position=pos, run_id=run))
    return {"documents": drows, "passages": prows, "deletions": xrows}
