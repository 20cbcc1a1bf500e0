"""``biogliner predict`` and ``biogliner labels`` end to end on tiny random checkpoints.

Random weights: the entities are meaningless, but offsets, ids, counting, banks and options are
checked exactly. Threshold 0.52 gives a few entities per sentence with ``tiny_checkpoint``.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


LABELS = ["gene or protein", "chemical or drug", "disease", "species"]
T = "0.52"

TEXTS = [
    "BRCA1 and TP53 mutations were found in 12 of 40 patients with breast cancer.",
    "Treatment with 5-fluorouracil (10 mg/kg) reduced IL-6 levels in C57BL/6 mice; P<0.05.",
    "Naïve CD4+ T cells from Escherichia coli-infected hosts expressed TNF-α and IFN-γ at 37 °C.",
    "😀 emoji before the gene EGFR, then 日本語 text and the drug aspirin.",
    "Short.",
    # long enough to be chunked (> 384 regex words): offsets must still be exact past the seam
    " ".join(
        f"Sentence {i} reports that KRAS G12D and metformin modulate AMPK signaling in HeLa cells."
        for i in range(60)
    ),
]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def _labels_args() -> list[str]:
    out: list[str] = []
    for lab in LABELS:
        out += ["--label", lab]
    return out


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def check_entities(records: list[dict], texts_by_id: dict, labels: set[str], threshold: float) -> int:
    n = 0
    for rec in records:
        text = texts_by_id[rec["id"]]
        for e in rec["entities"]:
            assert set(e) == {"start", "end", "text", "label", "score"}
            assert 0 <= e["start"] < e["end"] <= len(text)
            assert text[e["start"] : e["end"]] == e["text"], (rec["id"], e)
            assert e["label"] in labels
            assert threshold < e["score"] <= 1.0
            n += 1
    return n


def test_predict_jsonl_offsets_slice_the_input(cli, tiny_checkpoint, tmp_path):
    inp = _write_jsonl(tmp_path / "in.jsonl", [{"id": f"doc{i}", "text": t} for i, t in enumerate(TEXTS)])
    out = tmp_path / "out.jsonl"
    rc, _, err = cli("predict", "--model", tiny_checkpoint, *_labels_args(), "--threshold", T,
                     "--input", inp, "--output", out, "--device", "cpu")
    assert rc == 0, err
    recs = read_jsonl(out)
    assert [r["id"] for r in recs] == [f"doc{i}" for i in range(len(TEXTS))]
    n = check_entities(recs, {f"doc{i}": t for i, t in enumerate(TEXTS)}, set(LABELS), float(T))
    assert n > 0, "threshold too high for the tiny checkpoint: the offset checks would be vacuous"
    long_text = TEXTS[-1]
    assert any(e["start"] > len(long_text) // 2 for e in recs[-1]["entities"]), "nothing found in the second half of a chunked text"
    # flat decoding: no two entities of a text overlap
    for r in recs:
        spans = sorted((e["start"], e["end"]) for e in r["entities"])
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    assert f"{len(TEXTS)} texts annotated" in err and "0 bad lines" in err


def test_cli_output_equals_python_api(cli, tiny_checkpoint, tmp_path):
    from biogliner.labels import LabelSet
    from biogliner.model import BiEncoder

    model = BiEncoder.load(str(tiny_checkpoint), device="cpu")
    bank = model.embed_labels(LabelSet.from_names(LABELS, threshold=float(T)))
    expected = [[(e.start, e.end, e.label, round(e.score, 6)) for e in r[0]] for r in model.predict(TEXTS, [bank])]
    inp = _write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    out = tmp_path / "out.jsonl"
    rc, _, err = cli("predict", "--model", tiny_checkpoint, *_labels_args(), "--threshold", T,
                     "--input", inp, "--output", out, "--batch-size", "2", "--device", "cpu")
    assert rc == 0, err
    got = [[(e["start"], e["end"], e["label"], e["score"]) for e in r["entities"]] for r in read_jsonl(out)]
    assert [[g[:3] for g in x] for x in got] == [[e[:3] for e in x] for x in expected]
    for gx, ex in zip(got, expected):
        for g, e in zip(gx, ex):
            assert g[3] == pytest.approx(e[3], abs=1e-5)


def test_plain_text_ids_are_line_numbers_and_blank_lines_counted(cli, tiny_checkpoint, tmp_path):
    lines = [TEXTS[0], "", TEXTS[1], "   ", TEXTS[2]]
    inp = tmp_path / "in.txt"
    inp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    rc, _, err = cli("predict", "--model", tiny_checkpoint, *_labels_args(), "--threshold", T,
                     "--input", inp, "--output", out, "--device", "cpu")
    assert rc == 0, err
    recs = read_jsonl(out)
    assert [r["id"] for r in recs] == [1, 3, 5]
    check_entities(recs, {1: lines[0], 3: lines[2], 5: lines[4]}, set(LABELS), float(T))
    assert "2 blank lines skipped" in err and "of 5 lines" in err


def test_plain_text_that_looks_like_json_later_is_still_text(cli, tiny_checkpoint, tmp_path):
    lines = ["plain text first line about BRCA1.", '{"id": 9, "text": "json-looking line"}']
    inp = tmp_path / "in.txt"
    inp.write_text("\n".join(lines) + "\r\n", encoding="utf-8")  # CRLF ending stripped too
    out = tmp_path / "out.jsonl"
    rc, _, err = cli("predict", "--model", tiny_checkpoint, *_labels_args(), "--threshold", T,
                     "--input", inp, "--output", out, "--device", "cpu")
    assert rc == 0, err
    recs = read_jsonl(out)
    assert [r["id"] for r in recs] == [1, 2]
    check_entities(recs, {1: lines[0], 2: lines[1]}, set(LABELS), float(T))


def test_bad_lines_are_reported_counted_and_the_rest_goes_on(cli, tiny_checkpoint, tmp_path):
    inp = tmp_path / "in.jsonl"
    good = [json.dumps({"id": "a", "text": TEXTS[0]}), json.dumps({"id": "b", "text": TEXTS[1]})]
    raw = b"\n".join([
        good[0].encode(),
        b'{"id": "x", "text": ',                 # 2: truncated JSON
        b'{"id": "y"}',                          # 3: no text
        b'{"id": "z", "text": 42}',              # 4: text not a string
        b'{"id": "u", "text": "caf\xe9"}',       # 5: invalid UTF-8
        b'["not", "an", "object"]',              # 6: not an object
        good[1].encode(),                        # 7
    ]) + b"\n"
    inp.write_bytes(raw)
    out = tmp_path / "out.jsonl"
    rc, _, err = cli("predict", "--model", tiny_checkpoint, *_labels_args(), "--threshold", T,
                     "--input", inp, "--output", out, "--device", "cpu")
    assert rc == 1
    assert [r["id"] for r in read_jsonl(out)] == ["a", "b"]
    for lineno, what in [(2, "invalid JSON"), (3, "no 'text' key"), (4, "'text' must be a string"),
                         (5, "not UTF-8"), (6, "expected a JSON object")]:
        assert f"{inp}: line {lineno}: {what}" in err, err
    assert "2 texts annotated" in err and "5 bad lines" in err


def test_json_id_defaults_to_line_number_and_custom_fields(cli, tiny_checkpoint, tmp_path):
    inp = _write_jsonl(tmp_path / "in.jsonl", [{"body": TEXTS[0]}, {"pmid": 7, "body": TEXTS[1]}])
    out = tmp_path / "out.jsonl"
    rc, _, err = cli("predict", "--model", tiny_checkpoint, *_labels_args(), "--threshold", T, "--input", inp,
                     "--output", out, "--text-field", "body", "--id-field", "pmid", "--device", "cpu")
    assert rc == 0, err
    assert [r["id"] for r in read_jsonl(out)] == [1, 7]


def test_gzip_input(cli, tiny_checkpoint, tmp_path):
    inp = tmp_path / "in.txt.gz"
    with gzip.open(inp, "wt", encoding="utf-8") as fh:
        fh.write(TEXTS[0] + "\n" + TEXTS[2] + "\n")
    out = tmp_path / "out.jsonl"
    rc, _, err = cli("predict", "--model", tiny_checkpoint, *_labels_args(), "--threshold", T,
                     "--input", inp, "--output", out, "--device", "cpu")
    assert rc == 0, err
    recs = read_jsonl(out)
    check_entities(recs, {1: TEXTS[0], 2: TEXTS[2]}, set(LABELS), float(T))


def test_options_threshold_nested_multilabel(cli, tiny_checkpoint, tmp_path):
    from biogliner.labels import LabelSet
    from biogliner.model import BiEncoder

    texts = TEXTS[:4]
    inp = _write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    model = BiEncoder.load(str(tiny_checkpoint), device="cpu")

    def run(*extra):
        out = tmp_path / f"out{len(os.listdir(tmp_path))}.jsonl"
        rc, _, err = cli("predict", "--model", tiny_checkpoint, *_labels_args(), "--input", inp, "--output", out,
                         "--device", "cpu", *extra)
        assert rc == 0, err
        return [{(e["start"], e["end"], e["label"]) for e in r["entities"]} for r in read_jsonl(out)]

    def api(**opts):
        bank = model.embed_labels(LabelSet.from_names(LABELS, **opts))
        return [{(e.start, e.end, e.label) for e in r[0]} for r in model.predict(texts, [bank])]

    flat = run("--threshold", T)
    nested = run("--threshold", T, "--nested")
    multi = run("--threshold", T, "--nested", "--multi-label")
    assert flat == api(threshold=float(T))
    assert nested == api(threshold=float(T), flat_ner=False)
    assert multi == api(threshold=float(T), flat_ner=False, multi_label=True)
    assert all(not s for s in run("--threshold", "0.99"))
    # the options took effect: nesting and repeated spans appear, and only where allowed
    def overlapping(spans):
        return [(a, b) for a in spans for b in spans if a < b and a[0] < b[1] and b[0] < a[1]]

    for f in flat:
        assert not overlapping({(s, e) for s, e, _ in f})
    n_nested = 0
    for n in nested:
        assert len({(s, e) for s, e, _ in n}) == len(n)  # no repeated span without --multi-label
        for a, b in overlapping({(s, e) for s, e, _ in n}):
            assert (a[0] <= b[0] and b[1] <= a[1]) or (b[0] <= a[0] and a[1] <= b[1]), (a, b)  # no partial overlap
            n_nested += 1
    assert n_nested > 0
    assert any(len({(s, e) for s, e, _ in m}) < len(m) for m in multi)


def test_labels_embed_show_and_predict_with_bank(cli, tiny_checkpoint, tmp_path):
    from biogliner.model import BiEncoder

    set_yaml = tmp_path / "set.yaml"
    set_yaml.write_text(
        "name: clitest\nversion: '3'\nthreshold: 0.52\nlabels:\n  - gene or protein\n"
        "  - {name: drug, prompt: chemical or drug, threshold: 0.53}\n  - disease\n",
        encoding="utf-8",
    )
    bank = tmp_path / "bank.safetensors"
    rc, _, err = cli("labels", "embed", "--model", tiny_checkpoint, "--labels", set_yaml, "--out", bank, "--device", "cpu")
    assert rc == 0, err
    assert bank.exists()
    fingerprint = BiEncoder.load(str(tiny_checkpoint), device="cpu").fingerprint
    rc, out, err = cli("labels", "show", bank)
    assert rc == 0, err
    assert "clitest@3" in out and fingerprint in out
    assert "chemical or drug" in out and "0.53" in out
    rc, out, _ = cli("labels", "show", bank, "--json")
    d = json.loads(out)
    assert d["model_fingerprint"] == fingerprint
    assert [x["threshold"] for x in d["labels"]] == [0.52, 0.53, 0.52]

    inp = _write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    out_set, out_bank = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    rc, _, err = cli("predict", "--model", tiny_checkpoint, "--labels", set_yaml, "--input", inp, "--output", out_set, "--device", "cpu")
    assert rc == 0, err
    rc, _, err = cli("predict", "--model", tiny_checkpoint, "--bank", bank, "--input", inp, "--output", out_bank, "--device", "cpu")
    assert rc == 0, err
    a, b = read_jsonl(out_set), read_jsonl(out_bank)
    assert [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in a] == \
        [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in b]
    assert sum(len(r["entities"]) for r in a) > 0
    assert {e["label"] for r in a for e in r["entities"]} <= {"gene or protein", "drug", "disease"}
    # options on a bank
    rc, _, err = cli("predict", "--model", tiny_checkpoint, "--bank", bank, "--threshold", "0.99", "--input", inp,
                     "--output", out_bank, "--device", "cpu")
    assert rc == 0, err
    assert all(not r["entities"] for r in read_jsonl(out_bank))


def test_bank_from_another_checkpoint_is_refused(cli, tiny_checkpoint, other_checkpoint, tmp_path):
    from biogliner.model import BiEncoder

    bank = tmp_path / "other.safetensors"
    rc, _, err = cli("labels", "embed", "--model", other_checkpoint, "--labels", "core", "--out", bank, "--device", "cpu")
    assert rc == 0, err
    fp_tiny = BiEncoder.load(str(tiny_checkpoint), device="cpu").fingerprint
    fp_other = BiEncoder.load(str(other_checkpoint), device="cpu").fingerprint
    assert fp_tiny != fp_other
    inp = tmp_path / "in.txt"
    inp.write_text(TEXTS[0] + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    rc, _, err = cli("predict", "--model", tiny_checkpoint, "--bank", bank, "--input", inp, "--output", out, "--device", "cpu")
    assert rc == 2
    assert fp_tiny in err and fp_other in err
    assert not out.exists()


@pytest.mark.parametrize(
    "yaml_text, needle",
    [
        ("name: e\nversion: '1'\nlabels: []\n", "empty"),
        ("name: d\nversion: '1'\nlabels: [gene, disease, gene]\n", "duplicate label name 'gene'"),
    ],
)
def test_bad_label_set_is_a_usage_error(cli, tiny_checkpoint, tmp_path, yaml_text, needle):
    set_yaml = tmp_path / "bad.yaml"
    set_yaml.write_text(yaml_text, encoding="utf-8")
    inp = tmp_path / "in.txt"
    inp.write_text(TEXTS[0] + "\n", encoding="utf-8")
    for cmd in (["predict", "--input", inp, "--output", tmp_path / "o.jsonl"], ["labels", "embed", "--out", tmp_path / "b.safetensors"]):
        rc, _, err = cli(*cmd, "--model", tiny_checkpoint, "--labels", set_yaml, "--device", "cpu")
        assert rc == 2
        assert str(set_yaml) in err and needle in err
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "b.safetensors").exists()


def test_duplicate_ad_hoc_labels_and_bad_options(cli, tiny_checkpoint, tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text(TEXTS[0] + "\n", encoding="utf-8")
    rc, _, err = cli("predict", "--model", tiny_checkpoint, "--label", "gene", "--label", "gene", "--input", inp, "--device", "cpu")
    assert rc == 2 and "duplicate label name 'gene'" in err
    rc, _, err = cli("predict", "--model", tiny_checkpoint, "--label", "gene", "--threshold", "1.5", "--input", inp)
    assert rc == 2 and "--threshold" in err
    rc, _, err = cli("predict", "--model", tiny_checkpoint, "--label", "gene", "--input", tmp_path / "missing.txt", "--device", "cpu")
    assert rc == 2 and "missing.txt" in err
    with pytest.raises(SystemExit):  # argparse: --labels and --label are exclusive
        cli("predict", "--model", tiny_checkpoint, "--label", "gene", "--labels", "core")


def test_missing_checkpoint_is_a_usage_error(cli, tmp_path):
    rc, _, err = cli("predict", "--model", tmp_path / "no-such-ckpt", "--label", "gene", "--input", os.devnull, "--device", "cpu")
    assert rc == 2 and "no-such-ckpt" in err


def test_stdin_stdout_subprocess(tiny_checkpoint):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-m", "biogliner", "predict", "--model", str(tiny_checkpoint), *_labels_args(),
         "--threshold", T, "--device", "cpu"],
        input="\n".join(TEXTS[:3]).encode("utf-8"), capture_output=True, env=env, timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr.decode()
    recs = [json.loads(x) for x in proc.stdout.decode("utf-8").splitlines()]
    assert [r["id"] for r in recs] == [1, 2, 3]
    check_entities(recs, dict(zip([1, 2, 3], TEXTS[:3])), set(LABELS), float(T))
    assert b"3 texts annotated" in proc.stderr


def test_input_output_and_bank_on_s3(cli, tiny_checkpoint, s3_bucket):
    from biogliner import io as bio

    fs, path = bio.filesystem(f"{s3_bucket}/in/texts.jsonl")
    with fs.open(path, "wb") as fh:
        fh.write("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS[:3])).encode())
    bank = f"{s3_bucket}/banks/core.safetensors"
    rc, _, err = cli("labels", "embed", "--model", tiny_checkpoint, "--labels", "core", "--out", bank, "--device", "cpu")
    assert rc == 0, err
    out = f"{s3_bucket}/out/ents.jsonl"
    rc, _, err = cli("predict", "--model", tiny_checkpoint, "--bank", bank, "--threshold", T,
                     "--input", f"{s3_bucket}/in/texts.jsonl", "--output", out, "--device", "cpu")
    assert rc == 0, err
    fs, opath = bio.filesystem(out)
    recs = [json.loads(x) for x in fs.cat(opath).decode("utf-8").splitlines()]
    assert [r["id"] for r in recs] == [0, 1, 2]
    from biogliner.labels import load_label_set

    check_entities(recs, dict(enumerate(TEXTS[:3])), set(load_label_set("core").names), float(T))


def test_same_overrides_same_label_set_id_and_entities_whatever_the_route(cli, tiny_checkpoint, tmp_path):
    """``labels embed --threshold T --nested`` then ``predict --bank``; ``predict --labels core
    --threshold T --nested``; and ``predict --bank <plain bank> --threshold T --nested``: one label
    set id (the overrides recorded in its version) and identical entities."""
    from biogliner.labels import load_label_set

    want = load_label_set("core").with_options(threshold=float(T), flat_ner=False).id
    assert want == f"core@1-t{float(T):g}-nested"
    inp = tmp_path / "in.txt"
    inp.write_text("\n".join(TEXTS[:3]) + "\n")
    tuned, plain = tmp_path / "tuned.safetensors", tmp_path / "plain.safetensors"
    opts = ("--threshold", T, "--nested")
    rc, _, err = cli("labels", "embed", "--model", tiny_checkpoint, "--labels", "core", "--out", tuned, "--device", "cpu", *opts)
    assert rc == 0 and want in err, err
    rc, _, err = cli("labels", "embed", "--model", tiny_checkpoint, "--labels", "core", "--out", plain, "--device", "cpu")
    assert rc == 0 and "core@1 " in err
    runs = {
        "tuned bank": ("--bank", tuned),
        "set + overrides": ("--labels", "core", *opts),
        "plain bank + overrides": ("--bank", plain, *opts),
    }
    outs = {}
    for name, args in runs.items():
        out = tmp_path / f"{name.replace(' ', '_')}.jsonl"
        rc, _, err = cli("predict", "--model", tiny_checkpoint, *args, "--input", inp, "--output", out, "--device", "cpu")
        assert rc == 0 and f"labels {want} " in err, (name, err)
        outs[name] = read_jsonl(out)
    assert outs["tuned bank"] == outs["set + overrides"] == outs["plain bank + overrides"]
    assert sum(len(r["entities"]) for r in outs["tuned bank"]) > 0
