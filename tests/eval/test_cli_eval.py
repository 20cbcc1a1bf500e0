"""End-to-end ``biogliner eval`` with the tiny random checkpoint.

The scores of a random model are meaningless; what is checked is that the report's numbers are
exactly those the metrics give on the entities ``BiEncoder.predict`` returns (nothing hard-coded),
for a JSONL and a PubTator file, and that the sweep equals separate runs at each threshold.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from biogliner.cli import main
from biogliner.eval.labels import plan_labels
from biogliner.eval.metrics import score
from biogliner.eval.readers import read_gold

FIX = Path(__file__).parent / "fixtures"

TEXTS = [
    ("a1", "Aspirin reduces the risk of breast cancer in women with BRCA1 mutations.", [("Aspirin", "Chemical"), ("breast cancer", "Disease"), ("BRCA1", "Gene")]),
    ("a2", "Tamoxifen was given to MCF-7 cells; TP53 expression rose after treatment.", [("Tamoxifen", "Chemical"), ("TP53", "Gene")]),
    ("a3", "No entity is annotated in this sentence at all.", []),
    ("a4", "Insulin and glucose levels were measured in patients with diabetes mellitus.", [("Insulin", "Gene"), ("glucose", "Chemical"), ("diabetes mellitus", "Disease")]),
    # ~480 regex words, over the model's 384-word window: chunked by BiEncoder.predict, never truncated
    ("long", " ".join(f"Patient {i} took aspirin for breast cancer and BRCA1 was tested." for i in range(40)), [("aspirin", "Chemical"), ("BRCA1", "Gene")]),
]
T_LOW, T_HIGH = 0.5, 0.51  # random weights score ~0.5: candidates exist at both


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    from biogliner.model import BiEncoder

    return BiEncoder.load(str(tiny_checkpoint), device="cpu")


@pytest.fixture()
def gold_jsonl(tmp_path, model):
    """Hand-written gold spans, plus (so that the comparison is not all zeros) some spans the model
    itself predicts at ``T_LOW``: per document the first prediction exactly (a strict and relaxed
    TP) and the second trimmed by one character at its end (a relaxed TP only)."""
    plan = plan_labels(["Chemical", "Disease", "Gene"])
    bank = model.embed_labels(plan.label_set.with_options(threshold=T_LOW))
    preds = model.predict([t for _, t, _ in TEXTS], [bank])
    path = tmp_path / "gold.jsonl"
    with path.open("w") as fh:
        for (doc_id, text, ents), res in zip(TEXTS, preds):
            spans = {(text.index(m), text.index(m) + len(m), lab) for m, lab in ents}
            spans |= {(text.rindex(m), text.rindex(m) + len(m), lab) for m, lab in ents}  # last occurrences too
            found = res[0]
            if found:
                spans.add((found[0].start, found[0].end, plan.to_gold[found[0].label]))
            if len(found) > 1 and found[1].end - found[1].start > 1:
                spans.add((found[1].start, found[1].end - 1, plan.to_gold[found[1].label]))
            if doc_id == "long":  # predictions reach the end of the long text: it was chunked, not cut
                assert max(e.end for e in found) > 0.9 * len(text)
            fh.write(json.dumps({"id": doc_id, "text": text, "entities": [{"start": a, "end": b, "label": c} for a, b, c in sorted(spans)]}) + "\n")
    return path


def expected_scores(model, data: str, threshold: float, nested: bool = False):
    """The scores recomputed from scratch: gold reader, label plan, BiEncoder.predict, metrics."""
    corpus = read_gold(data)
    plan = plan_labels(corpus.labels, nested=nested)
    bank = model.embed_labels(plan.label_set.with_options(threshold=threshold))
    out = model.predict([d.text for d in corpus.docs], [bank], batch_size=2)
    golds = [list(d.spans) for d in corpus.docs]
    preds = [[replace(e, label=plan.to_gold[e.label]) for e in res[0]] for res in out]
    for d, res in zip(corpus.docs, out):
        for e in res[0]:
            assert d.text[e.start : e.end] == e.text
    return {mode: score(golds, preds, mode) for mode in ("strict", "relaxed")}, sum(map(len, preds))


def assert_same(section: dict, expected) -> None:
    micro = expected.micro
    assert section["precision"] == pytest.approx(micro.precision)
    assert section["recall"] == pytest.approx(micro.recall)
    assert section["f1"] == pytest.approx(micro.f1)
    assert (section["tp"], section["fp"], section["fn"]) == (micro.tp, micro.fp, micro.fn)
    assert set(section["per_label"]) == set(expected.per_label)
    for label, counts in expected.per_label.items():
        got = section["per_label"][label]
        assert (got["tp"], got["fp"], got["fn"]) == (counts.tp, counts.fp, counts.fn)
        assert got["f1"] == pytest.approx(counts.f1)
    for k in ("precision", "recall", "f1"):
        assert section["macro"][k] == pytest.approx(expected.macro[k])


@pytest.mark.parametrize("kind", ["jsonl", "pubtator"])
def test_eval_report_equals_metrics_on_predict(kind, model, tiny_checkpoint, gold_jsonl, tmp_path, capsys):
    data = str(gold_jsonl) if kind == "jsonl" else str(FIX / "sample.pubtator")
    report_path = tmp_path / "report.json"
    rc = main(
        ["eval", "--model", str(tiny_checkpoint), "--device", "cpu", "--data", data, "--threshold", str(T_LOW), str(T_HIGH),
         "--batch-size", "2", "--report", str(report_path)]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(report_path.read_text())
    assert report["model"] == model.fingerprint
    assert report["data"] == data
    corpus = read_gold(data)
    assert report["n_docs"] == len(corpus.docs) and report["n_gold"] == corpus.n_spans
    assert report["skipped_docs"] == len(corpus.skipped)
    by_threshold = {t: expected_scores(model, data, t) for t in (T_LOW, T_HIGH)}
    expected, n_pred = by_threshold[T_LOW]
    assert n_pred > 0, "the random model should predict something at the lowest threshold"
    assert report["n_pred"] == n_pred
    assert_same(report["strict"], expected["strict"])
    assert_same(report["relaxed"], expected["relaxed"])
    if kind == "jsonl":  # gold seeded with the model's own spans: the numbers are not all zero
        assert 0 < report["strict"]["tp"] < report["relaxed"]["tp"]
    # the sweep: each threshold equals a separate prediction at that threshold
    assert [r["threshold"] for r in report["sweep"]] == [T_LOW, T_HIGH]
    for row in report["sweep"]:
        exp, _ = by_threshold[row["threshold"]]
        for mode in ("strict", "relaxed"):
            assert row[mode]["f1"] == pytest.approx(exp[mode].micro.f1)
            assert row[mode]["macro_f1"] == pytest.approx(exp[mode].macro["f1"])
    # the readable table went to stdout
    assert "micro" in captured.out and "macro" in captured.out and "threshold sweep" in captured.out


def test_eval_nested_and_label_map(model, tiny_checkpoint, gold_jsonl, tmp_path):
    label_map = tmp_path / "map.yaml"
    label_map.write_text("Chemical: chemical or drug\nGene: null\n")
    report_path = tmp_path / "r.json"
    rc = main(
        ["eval", "--model", str(tiny_checkpoint), "--device", "cpu", "--data", str(gold_jsonl), "--label-map", str(label_map),
         "--nested", "--threshold", str(T_LOW), "--no-sweep", "--report", str(report_path), "-q"]
    )
    assert rc == 0
    report = json.loads(report_path.read_text())
    assert report["labels"] == {"Chemical": "chemical or drug", "Disease": "disease"}
    assert report["excluded_gold"]["Gene"] >= 3 and report["flat_ner"] is False and report["sweep"] == []
    assert set(report["strict"]["per_label"]) <= {"Chemical", "Disease"}


def test_eval_usage_errors(tiny_checkpoint, tmp_path, capsys):
    assert main(["eval", "--model", str(tiny_checkpoint), "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    assert main(["eval", "--model", str(tiny_checkpoint), "--data", str(FIX / "sample.jsonl"), "--threshold", "1.5"]) == 2
    assert "(0, 1)" in capsys.readouterr().err
