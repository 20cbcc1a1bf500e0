"""One owner for label sets: every command resolves a label reference with the same overrides to the
same label set (same id, same content hash), through each command's own argv -> resolution path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biogliner.cli import build_parser
from biogliner.labels import (
    LabelSet,
    LabelSetError,
    Overrides,
    is_bank_ref,
    load_label_set,
    resolve,
)
from biogliner.model.errors import LabelBankError

GOLD = [{"id": "d1", "text": "BRCA1 mutations cause breast cancer.", "entities": [{"start": 0, "end": 5, "label": "gene or protein"}]}]


def _gold(tmp_path: Path) -> str:
    p = tmp_path / "gold.jsonl"
    p.write_text("".join(json.dumps(d) + "\n" for d in GOLD), encoding="utf-8")
    return str(p)


def _bank(tmp_path: Path, label_set: LabelSet, name: str = "core.safetensors") -> str:
    """A real bank file (random vectors: resolution reads only its label set)."""
    import torch

    from biogliner.model.labelbank import LabelBank

    c, d = len(label_set), 8
    g = torch.Generator().manual_seed(0)
    bank = LabelBank(label_set, "fp-test", torch.randn(c, d, generator=g), torch.randn(c, 4 * d, generator=g), torch.randn(c, generator=g))
    url = str(tmp_path / name)
    bank.save(url)
    return url


def _parse(argv: list[str]):
    return build_parser().parse_args(argv)


def predict_set(ref: str, extra: list[str]) -> LabelSet:
    from biogliner.cli.predict import resolve_labels

    flag = "--bank" if is_bank_ref(ref) else "--labels"
    return resolve_labels(_parse(["predict", flag, ref, *extra])).label_set


def embed_set(ref: str, extra: list[str], tmp_path: Path) -> LabelSet:
    from biogliner.cli.labels import resolve_embed_labels

    return resolve_embed_labels(_parse(["labels", "embed", "--labels", ref, "--out", str(tmp_path / "o.safetensors"), *extra])).label_set


def eval_set(ref: str, extra: list[str], tmp_path: Path) -> LabelSet:
    from biogliner.cli.eval import config_from_args
    from biogliner.eval.runner import headline_label_set, load_corpus, make_plan, sweep_thresholds

    cfg = config_from_args(_parse(["eval", "--data", _gold(tmp_path), "--labels", ref, *extra]))
    plan = make_plan(cfg, load_corpus(cfg))
    return headline_label_set(plan, sweep_thresholds(cfg.thresholds, cfg.sweep)[0])


def annotate_set(ref: str, extra: list[str]) -> LabelSet:
    from biogliner.pipeline.args import config_from_args
    from biogliner.pipeline.banks import resolve_label_sets

    cfg = config_from_args(_parse(["annotate", "--labels", ref, *extra]))
    (src,) = resolve_label_sets(cfg.labels, cfg.threshold, cfg.storage_options)  # what pipeline.job.AnnotateJob calls
    return src.label_set


def nightly_set(ref: str, extra: list[str]) -> LabelSet:
    from biogliner.pipeline.args import config_from_args
    from biogliner.pipeline.banks import resolve_label_sets

    args = _parse(["nightly", "--output", "/nonexistent/out", "--pubmed-updates", "/nonexistent/u", "--labels", ref, *extra])
    a = config_from_args(args)  # what cli.nightly.run_from_args builds; plan_nightly resolves it so
    (src,) = resolve_label_sets(a.labels, a.threshold, a.storage_options)
    return src.label_set


def all_commands(ref: str, extra: list[str], tmp_path: Path) -> dict[str, LabelSet]:
    return {
        "predict": predict_set(ref, extra),
        "labels embed": embed_set(ref, extra, tmp_path),
        "eval": eval_set(ref, extra, tmp_path),
        "annotate": annotate_set(ref, extra),
        "nightly": nightly_set(ref, extra),
    }


@pytest.mark.parametrize("kind", ["builtin", "yaml", "bank"])
@pytest.mark.parametrize("threshold", [None, "0.7"])
def test_every_command_gives_the_same_label_set(tmp_path, kind, threshold):
    core = load_label_set("core")
    ref = {"builtin": "core", "yaml": str(tmp_path / "core.yaml"), "bank": None}[kind]
    if kind == "yaml":
        import yaml

        Path(ref).write_text(yaml.safe_dump(core.to_dict()), encoding="utf-8")
    if kind == "bank":
        ref = _bank(tmp_path, core)
    extra = ["--threshold", threshold] if threshold else []
    sets = all_commands(ref, extra, tmp_path)
    want = core if threshold is None else core.with_options(threshold=float(threshold))
    assert want.id == ("core@1" if threshold is None else "core@1-t0.7")
    for cmd, ls in sets.items():
        assert (cmd, ls.id, ls.content_hash()) == (cmd, want.id, want.content_hash())
        assert ls.thresholds() == want.thresholds()


def test_nested_and_multi_label_overrides_agree_where_the_command_has_them(tmp_path):
    core = load_label_set("core")
    extra = ["--threshold", "0.6", "--nested"]
    got = {
        "predict": predict_set("core", extra),
        "labels embed": embed_set("core", extra, tmp_path),
        "eval": eval_set("core", extra, tmp_path),
    }
    want = core.with_options(threshold=0.6, flat_ner=False)
    assert want.id == "core@1-t0.6-nested" and not want.flat_ner
    assert {c: (s.id, s.content_hash()) for c, s in got.items()} == {c: (want.id, want.content_hash()) for c in got}
    multi = ["--multi-label"]
    assert predict_set("core", multi).id == embed_set("core", multi, tmp_path).id == "core@1-multi"


def test_versioning_rule():
    s = LabelSet.from_yaml_text("name: s\nversion: '3'\nthreshold: 0.5\nlabels: [a, {name: b, threshold: 0.6}]\n")
    # an override that changes nothing keeps the set (and its id)
    assert s.with_options(flat_ner=True, multi_label=False) is s
    flat = LabelSet.from_yaml_text("name: f\nversion: '1'\nthreshold: 0.5\nlabels: [a, b]\n")
    assert flat.with_options(threshold=0.5) is flat
    # a changing override is recorded; a second one of the same kind replaces the tag (no stacking)
    t = s.with_options(threshold=0.7)
    assert t.id == "s@3-t0.7" and t.thresholds() == (0.7, 0.7)
    assert t.with_options(threshold=0.8, flat_ner=False).id == "s@3-t0.8-nested"
    assert t.with_options(flat_ner=False).with_options(threshold=1e-5, multi_label=True).id == "s@3-t1e-05-nested-multi"
    # ids and content agree: the same content reached two ways has the same id and hash
    a = s.with_options(threshold=0.7).with_options(flat_ner=False)
    b = s.with_options(flat_ner=False, threshold=0.7)
    assert (a.id, a.content_hash()) == (b.id, b.content_hash())
    # every override that changes the content changes the id
    variants = [s, t, s.with_options(flat_ner=False), s.with_options(multi_label=True), t.with_options(flat_ner=False)]
    assert len({v.id for v in variants}) == len({v.content_hash() for v in variants}) == len(variants)
    with pytest.raises(LabelSetError, match="threshold"):
        Overrides(threshold=1.5)


def test_is_bank_ref_is_the_one_rule(tmp_path):
    assert is_bank_ref("x.safetensors") and is_bank_ref("s3://b/X.SAFETENSORS") and is_bank_ref("b.bank")
    assert not is_bank_ref("biomed") and not is_bank_ref("set.yaml") and not is_bank_ref("safetensors")
    # a bank is resolved from its header only, and a non-bank with a bank name is a clear error
    bad = tmp_path / "fake.safetensors"
    bad.write_bytes(b"name: x\nversion: 1\nlabels: [a]\n")
    with pytest.raises(LabelBankError, match="fake.safetensors"):
        resolve(str(bad))
    with pytest.raises(LabelBankError, match="missing.safetensors: no such label bank"):
        resolve(str(tmp_path / "missing.safetensors"))


def test_bank_reuse_refuses_other_labels(tmp_path):
    import torch

    from biogliner.model.labelbank import LabelBank

    core = load_label_set("core")
    bank = LabelBank.load(_bank(tmp_path, core))
    t = bank.with_options(threshold=0.7)
    assert t.label_set.id == "core@1-t0.7" and torch.equal(t.p, bank.p)
    other = LabelSet.from_names(["something else", *core.names[1:]], name="core")
    with pytest.raises(LabelBankError, match="labels or prompts differ"):
        bank.with_label_set(other)


def test_resolved_bank_for_checks_the_model_and_applies_overrides(tmp_path):
    core = load_label_set("core")
    url = _bank(tmp_path, core)
    r = resolve(url, Overrides(threshold=0.7))
    assert r.bank_url == url and r.id == "core@1-t0.7"

    class Model:
        fingerprint = "fp-test"

    bank = r.bank_for(Model())
    assert bank.label_set == r.label_set and bank.thresholds().tolist() == pytest.approx([0.7] * len(core))
    Model.fingerprint = "other"
    with pytest.raises(LabelBankError, match="built for checkpoint fp-test"):
        r.bank_for(Model())


def test_model_default_is_shared_with_annotate(monkeypatch):
    from biogliner.cli.eval import _default_model
    from biogliner.cli.predict import default_model
    from biogliner.pipeline.config import MODEL_ENV
    from biogliner.pipeline.config import default_model as annotate_default

    monkeypatch.setenv(MODEL_ENV, "/models/mine")
    assert default_model() == _default_model() == annotate_default() == "/models/mine"
    monkeypatch.delenv(MODEL_ENV)
    assert default_model() == _default_model() == annotate_default()
