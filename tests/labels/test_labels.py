"""Label sets: YAML parsing, validation errors (each naming the file), built-in sets, overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from biogliner.labels import (
    DEFAULT_LABEL_SET,
    LabelSet,
    LabelSetError,
    LabelSpec,
    builtin_label_sets,
    load_label_set,
)

GOOD = """\
name: test-set
version: "2"
threshold: 0.4
flat_ner: false
multi_label: true
labels:
  - gene or protein
  - name: drug
    prompt: chemical or drug
    threshold: 0.7
  - name: disease
    threshold: 0.6
"""


def write(tmp_path: Path, text: str, name: str = "set.yaml") -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_parse_full_yaml(tmp_path):
    s = LabelSet.from_yaml(write(tmp_path, GOOD))
    assert s.name == "test-set" and s.version == "2" and s.id == "test-set@2"
    assert s.flat_ner is False and s.multi_label is True and s.threshold == 0.4
    assert s.names == ("gene or protein", "drug", "disease")
    assert s.prompts == ("gene or protein", "chemical or drug", "disease")
    assert s.thresholds() == (0.4, 0.7, 0.6)
    assert s.labels[0] == LabelSpec("gene or protein")
    assert s.labels[1].text == "chemical or drug"
    assert isinstance(s.labels, tuple)


def test_defaults_and_numeric_version(tmp_path):
    s = LabelSet.from_yaml(write(tmp_path, "name: x\nversion: 3\nlabels: [a, b]\n"))
    assert s.version == "3" and s.id == "x@3"
    assert s.threshold == 0.5 and s.flat_ner is True and s.multi_label is False
    assert s.thresholds() == (0.5, 0.5)


def test_round_trip_and_digest(tmp_path):
    s = LabelSet.from_yaml(write(tmp_path, GOOD))
    again = LabelSet.from_dict(s.to_dict())
    assert again == s and again.digest == s.digest
    changed = LabelSet.from_yaml(write(tmp_path, GOOD.replace("chemical or drug", "chemical compound"), "b.yaml"))
    assert changed.digest != s.digest
    assert len(s.digest) == 16


def test_frozen():
    s = LabelSet.from_names(["a"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.threshold = 0.9  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.labels[0].name = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("name: x\nversion: '1'\nlabels: []\n", "empty"),
        ("name: x\nversion: '1'\n", "missing required key 'labels'"),
        ("version: '1'\nlabels: [a]\n", "missing required key 'name'"),
        ("name: x\nlabels: [a]\n", "missing required key 'version'"),
        ("name: x\nversion: '1'\nlabels: [a]\ncolour: red\n", "unknown key 'colour'"),
        ("name: x\nversion: '1'\nlabels: [{name: a, tresh: 0.5}]\n", "unknown key 'tresh'"),
        ("name: x\nversion: '1'\nlabels: [{prompt: a}]\n", "labels[0]: missing required key 'name'"),
        ("name: x\nversion: '1'\nlabels: [a, b, a]\n", "duplicate label name 'a'"),
        ("name: x\nversion: '1'\nlabels: [Gene, 'gene ']\n", "duplicate label name"),
        ("name: x\nversion: '1'\nlabels: [{name: a, prompt: b}, b]\n", "duplicate prompt 'b'"),
        ("name: x\nversion: '1'\nthreshold: 1.0\nlabels: [a]\n", "threshold must be in (0, 1)"),
        ("name: x\nversion: '1'\nthreshold: 0\nlabels: [a]\n", "threshold must be in (0, 1)"),
        ("name: x\nversion: '1'\nthreshold: .nan\nlabels: [a]\n", "threshold must be in (0, 1)"),
        ("name: x\nversion: '1'\nthreshold: '0.5'\nlabels: [a]\n", "threshold must be a number"),
        ("name: x\nversion: '1'\nthreshold: true\nlabels: [a]\n", "threshold must be a number"),
        ("name: x\nversion: '1'\nlabels: [{name: a, threshold: 1.5}]\n", "label 'a': threshold must be in (0, 1)"),
        ("name: x\nversion: '1'\nlabels: [{name: a, threshold: -0.1}]\n", "label 'a': threshold must be in (0, 1)"),
        ("name: x\nversion: '1'\nflat_ner: yes please\nlabels: [a]\n", "flat_ner must be true or false"),
        ("name: x\nversion: '1'\nmulti_label: 1\nlabels: [a]\n", "multi_label must be true or false"),
        ("name: x y\nversion: '1'\nlabels: [a]\n", "label set name must match"),
        ("name: x@y\nversion: '1'\nlabels: [a]\n", "label set name must match"),
        ("name: x\nversion: '1 beta'\nlabels: [a]\n", "label set version must match"),
        ("name: x\nversion: '1'\nlabels: [a, 42]\n", "labels[1]: a label is a string or a mapping"),
        ("name: x\nversion: '1'\nlabels: [a, '  ']\n", "labels[1]: label name is empty"),
        ("name: x\nversion: '1'\nlabels: [{name: a, prompt: ''}]\n", "prompt is empty"),
        ("name: x\nversion: '1'\nlabels: [{name: 7}]\n", "label name must be a string"),
        ("name: x\nversion: '1'\nlabels: a\n", "'labels' must be a list"),
        ("name: x\nversion: '1'\nlabels: {a: 1}\n", "'labels' must be a list"),
        ("- a\n- b\n", "must be a mapping"),
        ("", "the file is empty"),
        ("name: x\nversion: '1'\nlabels: [a\n", "invalid YAML"),
        ("name: x\nname: y\nversion: '1'\nlabels: [a]\n", "duplicate key 'name'"),
    ],
)
def test_validation_errors_name_the_file(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(LabelSetError) as err:
        LabelSet.from_yaml(path)
    msg = str(err.value)
    assert needle in msg
    assert msg.startswith(path + ": "), msg


def test_missing_file_and_directory(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(LabelSetError, match="nope.yaml: no such label set file"):
        LabelSet.from_yaml(missing)
    with pytest.raises(LabelSetError, match="nope.yaml"):
        load_label_set(missing)


def test_not_utf8(tmp_path):
    p = tmp_path / "latin.yaml"
    p.write_bytes("name: x\nversion: '1'\nlabels: [caf\xe9]\n".encode("latin-1"))
    with pytest.raises(LabelSetError, match="latin.yaml: not UTF-8"):
        LabelSet.from_yaml(str(p))


def test_labelset_error_is_value_error():
    assert issubclass(LabelSetError, ValueError)


def test_direct_construction_validates():
    with pytest.raises(LabelSetError, match="empty"):
        LabelSet(name="x", version="1", labels=())
    with pytest.raises(LabelSetError, match="duplicate label name"):
        LabelSet(name="x", version="1", labels=(LabelSpec("a"), LabelSpec("a", prompt="other")))
    with pytest.raises(LabelSetError, match="LabelSpec"):
        LabelSet(name="x", version="1", labels=("a",))  # type: ignore[arg-type]
    with pytest.raises(LabelSetError, match="threshold"):
        LabelSpec("a", threshold=1.0)
    with pytest.raises(LabelSetError, match="whitespace"):
        LabelSpec(" a")
    with pytest.raises(LabelSetError, match="newline"):
        LabelSpec("a\nb")
    # a list is accepted and frozen into a tuple
    s = LabelSet(name="x", version="1", labels=[LabelSpec("a")])  # type: ignore[arg-type]
    assert s.labels == (LabelSpec("a"),)


def test_from_names():
    s = LabelSet.from_names([" gene ", "disease"], threshold=0.3, flat_ner=False, multi_label=True)
    assert s.names == ("gene", "disease") and s.prompts == s.names
    assert s.thresholds() == (0.3, 0.3) and not s.flat_ner and s.multi_label
    assert s.id == "adhoc@1"
    assert LabelSet.from_names("gene").names == ("gene",)
    with pytest.raises(LabelSetError, match="<labels>: the label set is empty"):
        LabelSet.from_names([])
    with pytest.raises(LabelSetError, match="duplicate label name 'gene'"):
        LabelSet.from_names(["gene", "gene"])
    with pytest.raises(LabelSetError, match="threshold"):
        LabelSet.from_names(["gene"], threshold=1.5)


def test_with_options(tmp_path):
    s = LabelSet.from_yaml(write(tmp_path, GOOD))
    t = s.with_options(threshold=0.8)
    assert t.thresholds() == (0.8, 0.8, 0.8)  # overrides every label, including per-label ones
    assert s.thresholds() == (0.4, 0.7, 0.6)  # original untouched
    assert t.prompts == s.prompts and t.flat_ner == s.flat_ner
    u = s.with_options(flat_ner=True, multi_label=False)
    assert u.flat_ner and not u.multi_label and u.thresholds() == s.thresholds()
    assert s.with_options() is s
    with pytest.raises(LabelSetError, match="threshold"):
        s.with_options(threshold=1.2)


def test_builtin_sets():
    names = builtin_label_sets()
    assert DEFAULT_LABEL_SET in names and "core" in names
    biomed = load_label_set(DEFAULT_LABEL_SET)
    assert biomed.id.startswith("biomed@")
    for want in ("gene or protein", "chemical or drug", "disease", "species", "cell line", "sequence variant",
                 "cell type", "anatomy"):
        assert want in biomed.names
    assert all(0 < t < 1 for t in biomed.thresholds())
    assert all(p == p.lower() for p in biomed.prompts)
    core = load_label_set("core")
    assert set(core.names) <= set(biomed.names)
    # every label of core is prompted exactly as in biomed (same vectors)
    bp = dict(zip(biomed.names, biomed.prompts))
    assert all(bp[n] == p for n, p in zip(core.names, core.prompts))


def test_load_label_set_path_and_unknown(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD)
    assert load_label_set(path).id == "test-set@2"
    with pytest.raises(LabelSetError, match="neither a label set file nor a built-in.*biomed"):
        load_label_set("no-such-set")
    # a bare file name in the working directory is read as a file
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").write_text(GOOD, encoding="utf-8")
    assert load_label_set("mine").id == "test-set@2"


def test_from_yaml_s3(s3_bucket):
    from biogliner import io as bio

    url = f"{s3_bucket}/sets/bio.yaml"
    fs, path = bio.filesystem(url)
    with fs.open(path, "wb") as fh:
        fh.write(GOOD.encode("utf-8"))
    s = load_label_set(url)
    assert s.id == "test-set@2" and s.thresholds() == (0.4, 0.7, 0.6)
    with pytest.raises(LabelSetError, match=f"{s3_bucket}/sets/missing.yaml: no such"):
        LabelSet.from_yaml(f"{s3_bucket}/sets/missing.yaml")


def test_thresholds_are_floats(tmp_path):
    s = LabelSet.from_yaml(write(tmp_path, "name: x\nversion: '1'\nthreshold: 0.45\nlabels: [{name: a, threshold: 0.25}, b]\n"))
    assert s.thresholds() == (0.25, 0.45)
    assert all(type(t) is float for t in s.thresholds())


def test_content_hash_covers_everything_that_changes_predictions(tmp_path):
    s = LabelSet.from_yaml(write(tmp_path, GOOD))
    h = s.content_hash()
    assert len(h) == 64 and int(h, 16) >= 0 and s.digest == h[:16]
    # The same content spelled another way (explicit prompt == name, explicit per-label threshold
    # == the set's) hashes the same: it predicts the same.
    respelled = GOOD.replace("  - gene or protein\n", "  - name: gene or protein\n    prompt: gene or protein\n    threshold: 0.4\n")
    assert LabelSet.from_yaml(write(tmp_path, respelled, "r.yaml")).content_hash() == h
    variants = {
        "name": GOOD.replace("name: test-set", "name: test-set2"),
        "version": GOOD.replace('version: "2"', 'version: "3"'),
        "set threshold": GOOD.replace("threshold: 0.4", "threshold: 0.45"),
        "flat_ner": GOOD.replace("flat_ner: false", "flat_ner: true"),
        "multi_label": GOOD.replace("multi_label: true", "multi_label: false"),
        "label name": GOOD.replace("name: disease", "name: illness"),
        "label prompt": GOOD.replace("prompt: chemical or drug", "prompt: chemical"),
        "label threshold": GOOD.replace("threshold: 0.7", "threshold: 0.71"),
        "label order": GOOD.replace("  - gene or protein\n", "").replace("    threshold: 0.6\n", "    threshold: 0.6\n  - gene or protein\n"),
    }
    seen = {h}
    for what, text in variants.items():
        other = LabelSet.from_yaml(write(tmp_path, text, "v.yaml")).content_hash()
        assert other not in seen, what
        seen.add(other)
