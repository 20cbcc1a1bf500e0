"""The evaluation runner with a fake model (label mapping, sweep by re-decoding, report), and the
label plans. The end-to-end run with a real (tiny random) checkpoint is in test_cli_eval.py."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from biogliner.eval.gold import GoldCorpus, GoldDoc, Span
from biogliner.eval.labels import load_label_map, natural_label, plan_labels
from biogliner.eval.metrics import as_tuple, score
from biogliner.eval.runner import EvalConfig, evaluate_corpus, format_report, run_eval, sweep_thresholds
from biogliner.labels import LabelSet, LabelSetError
from biogliner.schema import Entity

TEXT = "Aspirin reduces breast cancer risk."


class FakeBank:
    def __init__(self, label_set):
        self.label_set = label_set


class FakeModel:
    """Scores come from a table ``{text: [(start, end, label name, score)]}``; decoding keeps the
    candidates above each label's threshold, then resolves overlaps LEFT TO RIGHT (by start, not by
    score), so that filtering a low-threshold decoding by score would differ from re-decoding."""

    fingerprint = "fake-fingerprint"

    def __init__(self, table):
        self.table = table
        self.calls = []

    def embed_labels(self, label_set):
        return FakeBank(label_set)

    def predict(self, texts, banks, *, batch_size=8):
        self.calls.append((list(texts), [b.label_set for b in banks]))
        out = []
        for text in texts:
            per_bank = []
            for bank in banks:
                ls = bank.label_set
                th = dict(zip(ls.names, ls.thresholds()))
                cands = sorted(c for c in self.table.get(text, []) if c[2] in th and c[3] > th[c[2]])
                kept = []
                for s, e, lab, sc in cands:
                    if ls.flat_ner and any(s < ke and ks < e for ks, ke, _, _ in kept):
                        continue
                    kept.append((s, e, lab, sc))
                per_bank.append([Entity(s, e, text[s:e], lab, sc) for s, e, lab, sc in kept])
            out.append(per_bank)
        return out


def test_natural_label():
    assert natural_label("ChemicalEntity") == "chemical entity"
    assert natural_label("DiseaseOrPhenotypicFeature") == "disease or phenotypic feature"
    assert natural_label("GENE_OR_GENE_PRODUCT") == "gene or gene product"
    assert natural_label("DNAMutation") == "dna mutation"
    assert natural_label("Chemical") == "chemical"
    assert natural_label("Cell line") == "cell line"


def test_plan_default_map_and_label_set(tmp_path):
    plan = plan_labels(["Chemical", "Disease", "Chemical"])
    assert plan.label_set.names == ("chemical", "disease") and plan.label_set.flat_ner
    assert dict(plan.to_gold) == {"chemical": "Chemical", "disease": "Disease"}
    assert plan_labels(["Chemical"], label_form="verbatim").label_set.names == ("Chemical",)
    assert not plan_labels(["Chemical"], nested=True).label_set.flat_ner
    # label map: prompts, null excludes, absent types get the natural form
    m = tmp_path / "map.yaml"
    m.write_text("Chemical: chemical or drug\nGene: null\n")
    plan = plan_labels(["Chemical", "Disease", "Gene"], label_map=load_label_map(str(m)))
    assert plan.prompts == {"Chemical": "chemical or drug", "Disease": "disease"}
    assert plan.excluded == ("Gene",)
    # two types with the same prompt cannot be told apart
    with pytest.raises(LabelSetError, match="same prompt"):
        plan_labels(["Chemical", "CHEMICAL"])
    # a label set: names matched to gold types exactly or by natural form
    ls = LabelSet.from_names(["chemical entity", "disease", "species"])
    plan = plan_labels(["ChemicalEntity", "Disease", "Gene"], label_set=ls)
    assert dict(plan.to_gold) == {"chemical entity": "ChemicalEntity", "disease": "Disease"}
    assert plan.unlabelled == ("Gene",)
    bad = tmp_path / "bad.yaml"
    bad.write_text("Chemical: [1, 2]\n")
    with pytest.raises(LabelSetError, match="bad.yaml"):
        load_label_map(str(bad))


def test_sweep_thresholds():
    assert sweep_thresholds(None) == (None, (0.3, 0.4, 0.5, 0.6, 0.7, 0.8))
    assert sweep_thresholds([0.55]) == (0.55, (0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8))
    assert sweep_thresholds([0.6, 0.2, 0.6]) == (0.6, (0.2, 0.6))
    assert sweep_thresholds([0.6], sweep=False) == (0.6, ())
    with pytest.raises(ValueError):
        sweep_thresholds([1.5])


def _corpus():
    docs = [
        GoldDoc("a", TEXT, (Span(0, 7, "Chemical"), Span(16, 29, "Disease"))),
        GoldDoc("b", "Insulin lowers glucose.", (Span(0, 7, "Chemical"), Span(15, 22, "Chemical"))),
        GoldDoc("c", "   ", ()),  # blank: never sent to the model
    ]
    return GoldCorpus(source="mem", format="jsonl", docs=docs)


TABLE = {
    TEXT: [
        (0, 7, "chemical", 0.9),
        (8, 22, "disease", 0.35),  # "reduces breast": low score, starts first -> wins left-to-right at 0.3
        (16, 29, "disease", 0.65),  # the gold span: suppressed at 0.3, kept at 0.5
        (30, 34, "species", 0.99),  # a label with no gold type
    ],
    "Insulin lowers glucose.": [(0, 7, "chemical", 0.45), (15, 22, "disease", 0.7)],
}


def test_evaluate_corpus_re_decodes_each_threshold():
    corpus = _corpus()
    # a label set with one label (species) that matches no gold type
    plan = plan_labels(corpus.labels, label_set=LabelSet.from_names(["chemical", "disease", "species"]))
    model = FakeModel(TABLE)
    out = evaluate_corpus(model, corpus, plan, threshold=0.3, sweep=(0.3, 0.5))
    # one predict call for all thresholds, blank text left out, two banks (0.3 reused for the headline)
    assert len(model.calls) == 1
    texts, sets = model.calls[0]
    assert texts == [TEXT, "Insulin lowers glucose."] and [s.threshold for s in sets] == [0.3, 0.5]
    # at 0.3: a -> chemical (0,7) TP, disease (8,22) [suppresses (16,29)]; b -> chemical (0,7), disease (15,22)
    assert [as_tuple(e) for e in out.predictions[0]] == [(0, 7, "Chemical"), (8, 22, "Disease")]
    # strict at 0.3: Chemical tp2 (a, b) fn1 (b glucose) ; Disease fp2 fn1 -> micro tp2 fp2 fn2
    assert out.scores["strict"].micro.tp == 2 and out.scores["strict"].micro.fp == 2 and out.scores["strict"].micro.fn == 2
    # relaxed at 0.3: (8,22) overlaps gold (16,29) Disease -> tp ; b disease (15,22) vs gold Chemical -> fp
    assert out.scores["relaxed"].micro.tp == 3
    # the species prediction has no gold type: ignored, counted
    assert out.ignored_predictions == Counter({"species": 1})
    # sweep at 0.5 equals a separate run whose headline threshold is 0.5 (filtering 0.3 would miss (16,29))
    alone = evaluate_corpus(FakeModel(TABLE), corpus, plan, threshold=0.5)
    assert [as_tuple(e) for e in alone.predictions[0]] == [(0, 7, "Chemical"), (16, 29, "Disease")]
    row = {r["threshold"]: r for r in out.sweep}[0.5]
    for mode in ("strict", "relaxed"):
        assert row[mode]["f1"] == alone.scores[mode].micro.f1
        assert row[mode]["macro_f1"] == alone.scores[mode].macro["f1"]
    # and the scores are those of the metrics on the returned spans
    assert out.scores["strict"].per_label == score(out.golds, out.predictions, "strict").per_label


def test_run_eval_report_structure(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": "a", "text": TEXT, "entities": [{"start": 0, "end": 7, "label": "Chemical"}]},
                {"id": "b", "text": "Insulin lowers glucose.", "entities": [{"start": 0, "end": 7, "label": "Chemical"}]},
                {"id": "c", "text": "x", "entities": [{"start": 0, "end": 9, "label": "Chemical"}]},
            ]
        )
    )
    cfg = EvalConfig(model="fake", data=str(gold), thresholds=(0.4,))
    report = run_eval(cfg, model=FakeModel(TABLE))
    for mode in ("strict", "relaxed"):
        assert list(report[mode])[:3] == ["precision", "recall", "f1"]
        assert set(report[mode]["macro"]) == {"precision", "recall", "f1"}
        assert "Chemical" in report[mode]["per_label"]
    assert report["model"] == "fake-fingerprint" and report["n_docs"] == 2 and report["data"] == str(gold)
    assert report["skipped_docs"] == 1 and "'c'" in report["skipped"][0]
    assert [r["threshold"] for r in report["sweep"]] == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    # at 0.4: a chemical (0,7) TP; b chemical 0.45 TP -> strict Chemical P = 1, R = 1
    assert report["strict"]["per_label"]["Chemical"]["f1"] == 1.0
    json.dumps(report)  # serialisable
    table = format_report(report)
    assert "Chemical" in table and "micro" in table and "macro" in table and "threshold sweep" in table
    with pytest.raises(ValueError, match="not both"):
        EvalConfig(model="m", data="d", labels="a", label_map="b")


def test_run_eval_with_a_label_set_file(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        json.dumps({"id": "a", "text": TEXT, "entities": [{"start": 0, "end": 7, "label": "Chemical"}, {"start": 16, "end": 29, "label": "Disease"}]})
    )
    labels = tmp_path / "set.yaml"
    labels.write_text("name: mine\nversion: '2'\nthreshold: 0.6\nlabels:\n  - chemical\n  - species\n")
    report = run_eval(EvalConfig(model="fake", data=str(gold), labels=str(labels), sweep=False), model=FakeModel(TABLE))
    # the set's own threshold (0.6) applies: chemical 0.9 kept; species 0.99 kept but has no gold type
    assert report["label_set"] == "mine@2" and report["threshold"] == {"chemical": 0.6, "species": 0.6}
    assert report["labels"] == {"Chemical": "chemical"}
    assert report["unlabelled_gold_types"] == ["Disease"] and report["ignored_predictions"] == {"species": 1}
    # Chemical tp1; Disease (no label) fn1 -> micro P = 1, R = 1/2
    assert (report["strict"]["precision"], report["strict"]["recall"]) == (1.0, 0.5)
    assert report["sweep"] == []
