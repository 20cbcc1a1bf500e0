"""Batch composition is a function of the input alone (issue 10, finding 2).

The grouping rule and the read task's micro-batching as plain callables (no cluster), then one
end-to-end comparison: the same inputs with 1 vs 2 model actors, other rows per call, parse
block sizes and Ray block sizes give byte-identical entities tables, scores included. (Kills and
restarts: tests/pipeline/test_pipeline_e2e.py, which compares with exact equality too.)
"""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest
from pipeline_helpers import TINY_THRESHOLD

from biogliner.pipeline.plan import WorkUnit, identify
from biogliner.pipeline.stages import stream
from biogliner.pipeline.stages.batching import GROUPING, WINDOW_BATCHES, group_window, micro_batches
from biogliner.pipeline.stages.read import ParseParams, parse_input
from biogliner.testing.synthetic import make_pubmed_shard

# -- the grouping rule ------------------------------------------------------------------------


def test_group_window_longest_first_ties_in_document_order():
    assert group_window([5, 9, 5, 7, 9], [1, 1, 1, 1, 1], 2) == [[1, 4], [3, 0], [2]]
    assert group_window([], [], 4) == []


def test_group_window_fills_up_to_batch_size_chunks_and_a_long_passage_goes_alone():
    # passage 0 has 5 chunks (> batch size 3): a micro-batch of its own; 0-chunk passages ride along
    groups = group_window([500, 90, 80, 70, 60, 0], [5, 1, 2, 1, 1, 0], 3)
    assert groups == [[0], [1, 2], [3, 4, 5]]


@pytest.mark.parametrize("seed", range(20))
def test_group_window_properties(seed):
    rnd = random.Random(seed)
    n = rnd.randint(1, 60)
    batch_size = rnd.randint(1, 9)
    chunks = [rnd.choice([0, 1, 1, 1, 2, 3, 12]) for _ in range(n)]
    tokens = [c * rnd.randint(1, 40) for c in chunks]
    groups = group_window(tokens, chunks, batch_size)
    assert sorted(i for g in groups for i in g) == list(range(n))  # every passage exactly once
    flat = [i for g in groups for i in g]
    assert flat == sorted(range(n), key=lambda i: (-tokens[i], i))  # longest first, stable
    for g in groups:
        assert sum(chunks[i] for i in g) <= batch_size or sum(1 for i in g if chunks[i]) == 1
    # greedy: the next group's first passage would not have fitted
    for g, nxt in zip(groups, groups[1:]):
        assert sum(chunks[i] for i in g) + chunks[nxt[0]] > batch_size
    assert group_window(tokens, chunks, batch_size) == groups


def test_group_window_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        group_window([1], [1], 0)
    with pytest.raises(ValueError, match="token counts"):
        group_window([1, 2], [1], 4)


# -- micro-batches of one input: independent of how the parse task cut its blocks ------------


def _params(out, block_rows):
    return ParseParams(output=str(out), storage_options={}, run_id="r", block_rows=block_rows)


def _unit(path) -> WorkUnit:
    """The one-file unit the plan makes of a PubMed shard."""
    f = identify(str(path))
    return WorkUnit(f.source, f.input, (f,), ("biomed",))


def _rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    path = tmp_path_factory.mktemp("det") / "pubmed26n0300.xml.gz"
    path.write_bytes(make_pubmed_shard(40, first_pmid=60_000_000))
    return path


def test_micro_batches_do_not_depend_on_parse_blocks(shard, tiny_checkpoint, tmp_path):
    from biogliner.pipeline.stages.tokenize import Tokenize

    encode = Tokenize(str(tiny_checkpoint)).encode
    item = _unit(shard)
    batch_size = 3
    outs = {}
    for block_rows in (1, 7, 10_000):
        blocks = list(parse_input(item, _params(tmp_path / f"o{block_rows}", block_rows)))
        tables = list(micro_batches(iter(blocks), encode, batch_size))
        outs[block_rows] = [r for t in tables for r in _rows(t)]
    # the micro-batch rows, pickled encodings included, are the same bytes (the end row's info
    # holds the parse timings: it differs)
    assert outs[1][:-1] == outs[7][:-1] == outs[10_000][:-1]
    assert [r["kind"] for r in (outs[1][-1], outs[7][-1], outs[10_000][-1])] == [stream.END] * 3

    rows = outs[7]
    passages = [r for r in _rows(pa.concat_tables(parse_input(item, _params(tmp_path / "x", 100)))) if r["kind"] == stream.PASSAGE]
    window = WINDOW_BATCHES * batch_size
    assert len(passages) > 2 * window  # several windows, the last one short
    doc_order = [(p["position"], p["passage_index"]) for p in passages]
    got = [(k["position"], k["passage_index"]) for r in rows[:-1] for k in r["passages"]]
    assert sorted(got) == sorted(doc_order) and len(got) == len(set(got))
    # windows in document order: the first `window` passages out are the first `window` in
    assert sorted(got[:window]) == sorted(doc_order[:window])
    for r in rows[:-1]:
        assert r["kind"] == stream.BATCH and (r["n_chunks"] <= batch_size or len(r["passages"]) == 1)


def test_micro_batches_refuse_a_stream_without_its_end_row():
    row = {"kind": stream.PASSAGE, "source": "pubmed", "input": "x", "position": 0, "doc_id": "pubmed:1", "version": 1,
           "passage_index": 0, "text": "a b", "info": None}
    with pytest.raises(ValueError, match="after no end row"):
        list(micro_batches([pa.Table.from_pylist([row], schema=stream.PARSED)], lambda t: [], 2))


def test_batch_composition_changes_scores_which_is_why_it_is_fixed(tiny_checkpoint, shard, tmp_path):
    """The control: with the tiny model, the same passages in other padded batches get other
    scores in the last bits (so the end-to-end comparison below can fail)."""
    from biogliner.labels import load_label_set
    from biogliner.model import BiEncoder
    from biogliner.pipeline.banks import _override_threshold
    from biogliner.pipeline.stages.tokenize import Tokenize

    texts = [r["text"] for r in _rows(pa.concat_tables(parse_input(_unit(shard), _params(tmp_path, 1000)))) if r["kind"] == stream.PASSAGE]
    encoded = Tokenize(str(tiny_checkpoint)).encode(texts[:48])
    model = BiEncoder.load(str(tiny_checkpoint), device="cpu")
    bank = model.embed_labels(_override_threshold(load_label_set("biomed"), TINY_THRESHOLD))

    def scores(batch_size):
        return [[e.score for e in per_bank[0]] for per_bank in model.predict_encoded(encoded, [bank], batch_size=batch_size)]

    assert scores(8) == scores(8)
    assert scores(8) != scores(3)


# -- end to end: actors, rows per call, block sizes ------------------------------------------


def _entities_tables(out: str) -> dict[str, pa.Table]:
    """Each committed entities file's rows (run id aside: it differs by design), by partition:
    the files the entities table's Delta log names, of the units the commits table holds."""
    import pyarrow.parquet as pq

    from biogliner.store.output import Output

    output = Output(out)
    current = {(s, i, ls, run) for s, i, ls, run in output.state().current_label_sets()}
    tables: dict[str, list[pa.Table]] = {}
    for path in output.files("entities"):
        part = path.split("/entities/", 1)[1].rsplit("/", 1)[0]
        t = pq.read_table(path)
        runs = set(t.column("run_id").to_pylist())
        source, input_ = (kv.split("=", 1)[1] for kv in part.split("/"))
        assert all((source, input_, ls, run) in current for ls in set(t.column("label_set").to_pylist()) for run in runs), path
        tables.setdefault(part, []).append(t.drop_columns(["run_id"]))
    # one partition may hold several files (one per model-actor flush): their rows in a fixed order
    return {part: _sorted(pa.concat_tables(ts)) for part, ts in tables.items()}


def _sorted(t: pa.Table) -> pa.Table:
    keys = [k for k in ("doc_id", "passage_index", "start", "end", "label") if k in t.column_names]
    return t.sort_by([(k, "ascending") for k in keys])


@pytest.mark.slow
def test_actors_rows_per_call_and_block_sizes_do_not_change_a_byte(ray_session, tiny_checkpoint, shard, tmp_path):
    from biogliner.pipeline.config import AnnotateConfig
    from biogliner.pipeline.job import annotate
    from biogliner.sources import sample_corpus_path
    from biogliner.store.output import Output

    inputs = (str(sample_corpus_path()), str(shard))
    common = {"inputs": inputs, "model": str(tiny_checkpoint), "labels": ("biomed",), "threshold": TINY_THRESHOLD,
              "progress": "none", "batch_size": 4, "model_threads": 1}
    runs = {
        "clean": {"num_model_workers": 1, "rows_per_call": 16, "block_rows": 24},
        # two actors sharing the test session's 2 CPUs with the read tasks; other call and block sizes
        "other": {"num_model_workers": 2, "cpus_per_worker": 0.5, "rows_per_call": 40, "block_rows": 5, "target_block_mb": 0.02},
    }
    tables = {}
    for name, kw in runs.items():
        out = str(tmp_path / name)
        summary = annotate(AnnotateConfig(output=out, **common, **kw))
        assert summary.ok and summary.files_committed == summary.files_total == 5
        tables[name] = _entities_tables(out)
        label_sets = Output(out).state().label_sets
        # 5 files, 4 units: the two sample PMC articles make one unit
        assert len(label_sets) == 4 and all(set(sets) == {f"biomed@1-t{TINY_THRESHOLD:g}"} for sets in label_sets.values()), label_sets
        (scoring,) = {json.dumps(r.scoring, sort_keys=True) for sets in label_sets.values() for r in sets.values()}
        assert json.loads(scoring) == {"batch_size": 4, "precision": "fp32", "device": "cpu", "backend": "torch", "threads": 1, "grouping": GROUPING}
    clean, other = tables["clean"], tables["other"]
    assert sorted(clean) == sorted(other) and sum(t.num_rows for t in clean.values()) > 20
    for part in clean:
        assert clean[part].equals(other[part]), part
        a, b = (t.column("score").to_numpy() for t in (clean[part], other[part]))
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), part  # the same bits
