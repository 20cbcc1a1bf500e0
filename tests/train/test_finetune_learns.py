"""Learning works: fine-tuning a tiny random checkpoint on a toy few-shot task (~200 sentences of
real abstracts with invented drug names inserted, tests/train/toy.py) on 2 Ray Train CPU workers
takes strict F1 on held-out sentences (never trained on, most of their drug names unseen) from
< 0.2 to >= 0.8, both measured with ``biogliner eval``."""

from __future__ import annotations

import json

import pytest

from toy import LEARN_STEMS, abstract_sentences, toy_task, write_jsonl

pytest.importorskip("ray")
pytest.importorskip("torch")

pytestmark = pytest.mark.slow  # one 2-worker Ray Train run of a few epochs (~40 s on 2 cores)


def _strict_f1(main, model, data, tmp_path, name: str) -> float:
    report = tmp_path / f"eval-{name}.json"
    rc = main(["eval", "--model", str(model), "--data", str(data), "--threshold", "0.5", "--no-sweep",
               "--report", str(report), "--quiet"])
    assert rc == 0
    out = json.loads(report.read_text())
    assert out["n_docs"] == 36 and out["n_gold"] > 36  # every test record scored, 1-2 drugs each
    return out["strict"]["f1"]


def test_finetune_takes_heldout_f1_from_below_02_to_above_08(tmp_path, ray_session, tiny_checkpoint):
    from transformers import AutoTokenizer

    from biogliner.cli import main

    train, dev, test = toy_task(n_train=200, n_dev=8, n_test=12, seed=0)
    # The task as designed: test sentences are not training sentences, most test names are unseen,
    # and the names' first word piece starts no word of the sample text (see toy.LEARN_STEMS).
    def names(records):
        return {r["text"][e["start"] : e["end"]] for r in records for e in r["entities"]}

    def sentence(r):
        return " ".join(w for w in r["text"].split() if w not in names([r]))

    assert not {sentence(r) for r in test} & {sentence(r) for r in train}
    assert len(names(test) - names(train)) >= 0.5 * len(names(test))
    tok = AutoTokenizer.from_pretrained(str(tiny_checkpoint))
    firsts = {tok.tokenize(w)[0] for s in abstract_sentences() for w in s.split() if tok.tokenize(w)}
    assert not {tok.tokenize(stem.capitalize() + "mab")[0] for stem in LEARN_STEMS} & firsts

    train_p, dev_p, test_p = (write_jsonl(tmp_path / f"{n}.jsonl", r) for n, r in (("train", train), ("dev", dev), ("test", test)))
    before = _strict_f1(main, tiny_checkpoint, test_p, tmp_path, "before")
    assert before < 0.2, f"the random checkpoint already scores {before:.3f}"

    out = tmp_path / "out"
    rc = main(["finetune", "--model", str(tiny_checkpoint), "--train", str(train_p), "--dev", str(dev_p), "--out", str(out),
               "--epochs", "4", "--patience", "4", "--batch-size", "8", "--lr", "2e-3", "--encoder-lr", "1e-3",
               "--alpha", "0.5", "--dropout", "0", "--freeze-labels-encoder", "--num-workers", "2", "--seed", "1"])
    assert rc == 0
    after = _strict_f1(main, out, test_p, tmp_path, "after")
    report = json.loads((out / "finetune_report.json").read_text())
    print(f"held-out strict F1: before {before:.3f}, after {after:.3f}; dev strict F1 per epoch "
          f"{[round(e['dev_strict_f1'], 3) for e in report['epochs']]}")
    assert report["train"]["chunks"] == 200 and not report["train"]["dropped"]
    assert after >= 0.8, f"fine-tuning reached only {after:.3f} strict F1 on held-out sentences"
