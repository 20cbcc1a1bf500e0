"""Maintained current tables (biogliner.store.current) equal the read-time views (views.py's SQL).

A small synthetic history (PubMed revisions across files, a DeleteCitation then a re-add, a
deletion of a never-seen PMID, one PMID twice in one file, a previous production year, a
non-standard input name; PMC versions 1/2/3 with the latest deleted, a null version, a null
pmcid, a version tie across inputs; two label sets and a re-annotation) is committed to Delta
history tables, applied in several orders, and compared row for row with views._current_sql
run by DuckDB over the same rows written as plain hive-partitioned Parquet.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
from current_rows import unit_rows
import pyarrow.parquet as pq
import pytest

pytest.importorskip("deltalake")

import duckdb  # noqa: E402

from biogliner.schema import DELETIONS, DOCUMENTS, ENTITIES, PASSAGES  # noqa: E402
from biogliner.store import current as cur  # noqa: E402
from biogliner.store import views  # noqa: E402
from biogliner.store.delta import DeltaStore, write_data_file  # noqa: E402

LABELS = {"ner@1": ("gene", "disease"), "chem@1": ("chemical", "drug")}

# (input, [(pmid, position)...], [(deleted pmid, position)...])
PUBMED = [
    ("pubmed25n1500", [(4, 0), (10, 1), (11, 2)], []),
    ("pubmed26n0001", [(1, 0), (2, 1), (4, 2), (6, 3), (12, 4), (13, 5)], []),
    ("pubmed26n0002", [(1, 0), (3, 2), (3, 5), (14, 6)], [(2, 0), (999, 1), (13, 2)]),
    ("pubmed26n1300", [(1, 0), (2, 1), (5, 2), (6, 3), (10, 4)], [(6, 0), (14, 1)]),
    ("pubmed-manual", [(5, 0), (11, 1)], []),
]
# (input, [(pmcid, version, position)...], [deleted doc_id...])
PMC = [
    ("pmc_oa_0001", [("PMC10", 1, 0), ("PMC11", 1, 1), ("PMC13", 1, 2), ("PMC14", 2, 3), (None, 1, 4)], []),
    ("pmc_oa_0002", [("PMC10", 2, 0), ("PMC11", 2, 1), ("PMC13", None, 2), ("PMC14", 2, 3)], []),
    ("pmc_oa_0003", [("PMC10", 3, 0), ("PMC15", 1, 1)], ["pmc:PMC10.3", "pmc:PMC11.2"]),
]
REANNOTATED = ("pubmed", "pubmed26n0002", "ner@1")


def _entities(drows, label_set: str, run: str, rng: random.Random):
    out = []
    for d in drows:
        for p in range(2):
            for e in range(rng.randrange(1, 4)):
                out.append(dict(doc_id=d["doc_id"], version=d["version"], position=d["position"], passage_index=p, start=e,
                                end=e + 2, text=f"t{e}", label=rng.choice(LABELS[label_set]), score=round(rng.random(), 3),
                                label_set=label_set, model="fp-" + run, run_id=run))
    return out


def history() -> list[cur.CurrentUnit]:
    """The units of the synthetic history, in commit order (the re-annotation last)."""
    rng = random.Random(7)
    units = []
    specs = [("pubmed", i, [(k, 1, pos) for k, pos in d], [(f"pubmed:{k}", pos) for k, pos in x]) for i, d, x in PUBMED]
    specs += [("pmc", i, d, [(doc_id, n) for n, doc_id in enumerate(x)]) for i, d, x in PMC]
    for source, input_, docs, dels in specs:
        run = f"r-{input_}"
        rows = unit_rows(source, input_, docs, dels, run, rng, tag=input_)
        drows, prows, xrows = rows["documents"], rows["passages"], rows["deletions"]
        erows = _entities(drows, "ner@1", run, rng) + _entities(drows, "chem@1", run, rng)
        units.append(cur.CurrentUnit(
            source, input_,
            documents=pa.Table.from_pylist(drows, schema=DOCUMENTS),
            passages=pa.Table.from_pylist(prows, schema=PASSAGES),
            deletions=pa.Table.from_pylist(xrows, schema=DELETIONS),
            entities=pa.Table.from_pylist(erows, schema=ENTITIES),
            label_sets=(cur.LabelSetCommit("ner@1", run, 1), cur.LabelSetCommit("chem@1", run, 1)),
        ))
    # re-annotation of one label set of one input: new run, other rows, a higher seq
    src, inp, ls = REANNOTATED
    base = next(u for u in units if u.input == inp)
    erows = _entities(base.documents.to_pylist(), ls, "r-reannotate", random.Random(99))
    assert erows
    units.append(cur.CurrentUnit(src, inp, entities=pa.Table.from_pylist(erows, schema=ENTITIES),
                                 label_sets=(cur.LabelSetCommit(ls, "r-reannotate", 2),)))
    return units


UNITS = history()


def _parts(u: cur.CurrentUnit):
    for name in ("documents", "passages", "deletions", "entities"):
        t = getattr(u, name)
        if t is not None and t.num_rows:
            yield name, t


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Path:
    """The history committed to Delta tables (delta.py), read back by apply for rows not in a batch."""
    root = tmp_path_factory.mktemp("history")
    store = DeltaStore(str(root))
    for n, u in enumerate(UNITS):
        files = [write_data_file(str(root), name, t, {"source": u.source, "input": u.input}) for name, t in _parts(u)]
        store.commit_unit(f"{u.source}/{u.input}/{n}", 0, files, {"run_id": f"run{n}"})
    return root


@pytest.fixture(scope="module")
def expected(tmp_path_factory) -> dict[str, list[tuple]]:
    """views.py's current_* over the same rows, as plain Parquet files."""
    root = tmp_path_factory.mktemp("plain")
    files: dict[str, list[str]] = {t: [] for t in views.BASE_VIEWS}
    for n, u in enumerate(UNITS):
        for name, t in _parts(u):
            d = root / name / f"source={u.source}" / f"input={u.input}"
            d.mkdir(parents=True, exist_ok=True)
            pq.write_table(t, d / f"part-{n}.parquet")
            files[name].append(str(d / f"part-{n}.parquet"))
    pubmed = sorted({u.input for u in UNITS if u.source == "pubmed"}, key=views.file_rank_key)
    latest: dict[tuple, tuple] = {}
    for u in UNITS:
        for c in u.label_sets:
            k = (u.source, u.input, c.label_set)
            if k not in latest or latest[k][1] < c.seq:
                latest[k] = (c.run_id, c.seq)
    snap = views.Snapshot(
        root_url=str(root), local=True, files=files,
        input_order=tuple(("pubmed", name, rank) for rank, name in enumerate(pubmed)),
        current_label_sets=tuple(sorted((*k, v[0]) for k, v in latest.items())),
    )
    con = duckdb.connect()
    views.register(con, None, snap)
    return {t: _sorted(con.execute(f"SELECT {_cols(t)} FROM {t}").fetchall()) for t in cur.CURRENT_TABLES}


def _cols(table: str) -> str:
    return ", ".join(f'"{c}"' for c in cur.view_columns(table))


def _sorted(rows) -> list[tuple]:
    return sorted(rows, key=lambda r: tuple((v is None, "" if v is None else str(v)) for v in r))


def maintained(root: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect()
    out = {}
    for t in cur.CURRENT_TABLES:
        files = cur.file_uris(str(root), t)
        if not files:
            out[t] = []
            continue
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        rel = f"read_parquet([{listing}], hive_partitioning = true, hive_types = {{'source': 'VARCHAR', 'input': 'VARCHAR'}})"
        out[t] = _sorted(con.execute(f"SELECT {_cols(t)} FROM {rel}").fetchall())
    return out


def _check(root: Path, expected) -> None:
    got = maintained(root)
    for t in cur.CURRENT_TABLES:
        assert got[t] == expected[t], t
    for name, proto in cur.protocols(str(root)).items():
        assert proto == (1, 2), name


def _apply_each(root: Path, units, committed: Path) -> None:
    for u in units:
        cur.apply_unit(str(root), u, history_root=str(committed))


def test_oracle_covers_the_cases(expected):
    docs = {(r[0], r[-1]) for r in expected["current_documents"]}
    assert ("pubmed:1", "pubmed26n1300") in docs  # revised twice: the latest file wins
    assert ("pubmed:2", "pubmed26n1300") in docs  # deleted in n0002, re-added in n1300
    assert not any(d == "pubmed:6" for d, _ in docs)  # record and deletion in one file: deletion wins
    assert not any(d == "pubmed:13" for d, _ in docs)
    assert ("pubmed:4", "pubmed26n0001") in docs  # a later production year's file wins
    assert ("pubmed:5", "pubmed-manual") in docs  # a non-standard name sorts after the standard ones
    pos3 = [r for r in expected["current_documents"] if r[0] == "pubmed:3"]
    assert len(pos3) == 1 and pos3[0][cur.view_columns("current_documents").index("position")] == 5
    assert ("pmc:PMC10.2", "pmc_oa_0002") in docs  # v3 deleted: v2 is current again
    assert ("pmc:PMC11.1", "pmc_oa_0001") in docs
    assert ("pmc:PMC13.1", "pmc_oa_0001") in docs  # a null version sorts last
    assert ("pmc:PMC14.2", "pmc_oa_0002") in docs  # version tie: the later input name
    ents = expected["current_entities"]
    ls_i, run_i, in_i = (cur.view_columns("current_entities").index(c) for c in ("label_set", "run_id", "input"))
    assert {r[run_i] for r in ents if r[in_i] == "pubmed26n0002" and r[ls_i] == "ner@1"} == {"r-reannotate"}
    assert {r[run_i] for r in ents if r[in_i] == "pubmed26n0002" and r[ls_i] == "chem@1"} == {"r-pubmed26n0002"}
    assert all(len(expected[t]) > 10 for t in cur.CURRENT_TABLES)


def test_file_order(tmp_path, committed, expected):
    _apply_each(tmp_path, UNITS, committed)
    _check(tmp_path, expected)
    # (c) applying a unit again changes nothing, and writes nothing
    versions = {t: cur._Tables(str(tmp_path), None).get(t).version() for t in cur.CURRENT_TABLES}
    r = cur.apply_unit(str(tmp_path), UNITS[2], history_root=str(committed))
    assert r["entering"] == r["leaving"] == r["label_sets_changed"] == 0
    assert {t: cur._Tables(str(tmp_path), None).get(t).version() for t in cur.CURRENT_TABLES} == versions
    _check(tmp_path, expected)


def test_reverse_order(tmp_path, committed, expected):
    _apply_each(tmp_path, UNITS[::-1], committed)
    _check(tmp_path, expected)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_order_with_a_repeat(tmp_path, committed, expected, seed):
    rng = random.Random(seed)
    order = list(UNITS)
    rng.shuffle(order)
    order.insert(rng.randrange(len(order)), order[rng.randrange(len(order))])  # one unit applied twice
    _apply_each(tmp_path, order, committed)
    _check(tmp_path, expected)


def test_batches(tmp_path, committed, expected):
    order = list(UNITS)
    random.Random(5).shuffle(order)
    cur.apply_units(str(tmp_path), order[:5], history_root=str(committed))
    cur.apply_units(str(tmp_path), order[5:], history_root=str(committed))
    cur.apply_units(str(tmp_path), order[3:7], history_root=str(committed))  # again: no change
    _check(tmp_path, expected)


def test_without_the_reannotation_the_old_commit_is_current(tmp_path, committed, expected):
    """The comparison can fail: leaving the re-annotation out changes current_entities."""
    _apply_each(tmp_path, UNITS[:-1], committed)
    got = maintained(tmp_path)
    assert got["current_documents"] == expected["current_documents"]
    assert got["current_entities"] != expected["current_entities"]


def test_older_file_applied_later_never_wins(tmp_path, committed):
    by_input = {u.input: u for u in UNITS}
    cur.apply_unit(str(tmp_path), by_input["pubmed26n1300"], history_root=str(committed))
    cur.apply_unit(str(tmp_path), by_input["pubmed26n0001"], history_root=str(committed))
    docs = {r[0]: r[-1] for r in maintained(tmp_path)["current_documents"]}
    assert docs["pubmed:1"] == "pubmed26n1300" and docs["pubmed:2"] == "pubmed26n1300"
    assert "pubmed:6" not in docs and docs["pubmed:12"] == "pubmed26n0001"


def test_inconsistent_units_are_refused(tmp_path):
    u = UNITS[0]
    bad = cur.CurrentUnit(u.source, u.input, documents=u.documents, entities=u.entities, label_sets=())
    with pytest.raises(cur.CurrentStateError, match="undeclared"):
        cur.apply_unit(str(tmp_path), bad)


@pytest.mark.parametrize("point", ["current_passages", "current_entities", "state"])
def test_rerun_after_a_crash_converges(tmp_path, committed, expected, monkeypatch, point):
    """A crash during an application (before the state tables, or between them), then the same
    units applied again: the tables equal a clean run's."""

    class Crash(RuntimeError):
        pass

    order = list(UNITS)
    victims = {"pubmed26n1300", "pmc_oa_0003"}  # revisions, deletions, a PMC revert from the history
    real_append, real_conform = cur._Tables.append, cur._conform

    def append(self, name, data):
        if name == point:
            raise Crash(name)
        return real_append(self, name, data)

    def conform(data, schema):
        if point == "state" and schema is cur.STATE_SCHEMA:  # after pmc events and label sets merged
            raise Crash("state")
        return real_conform(data, schema)

    for u in order:
        if u.input in victims and u.documents is not None:
            with monkeypatch.context() as m:
                m.setattr(cur._Tables, "append", append)
                m.setattr(cur, "_conform", conform)
                with pytest.raises(Crash):
                    cur.apply_unit(str(tmp_path), u, history_root=str(committed))
        cur.apply_unit(str(tmp_path), u, history_root=str(committed))
    _check(tmp_path, expected)
