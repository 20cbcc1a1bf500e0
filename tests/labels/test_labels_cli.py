"""``biogliner labels list/show`` on label sets (no model needed) and argument errors."""

from __future__ import annotations

import json

import pytest

from biogliner.cli import main


@pytest.fixture()
def cli(capsys):
    def _run(*args):
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return _run


def test_list(cli):
    rc, out, _ = cli("labels", "list")
    assert rc == 0
    lines = out.splitlines()
    assert any(line.startswith("biomed@") and "(default)" in line for line in lines)
    assert any(line.startswith("core@") for line in lines)


def test_show_builtin_table_and_json(cli):
    from biogliner.labels import load_label_set

    s = load_label_set("biomed")
    rc, out, _ = cli("labels", "show", "biomed")
    assert rc == 0
    assert f"label set: {s.id}" in out and s.digest in out
    for spec, t in zip(s.labels, s.thresholds()):
        row = next(line for line in out.splitlines() if line.strip().startswith(spec.name + " "))
        assert spec.text in row and row.rstrip().endswith(f"{t:g}")
    rc, out, _ = cli("labels", "show", "biomed", "--json")
    d = json.loads(out)
    assert d["id"] == s.id and d["digest"] == s.digest and d["kind"] == "label set"
    assert d["content_hash"] == s.content_hash() and d["content_hash"].startswith(s.digest)
    assert [x["name"] for x in d["labels"]] == list(s.names)
    assert [x["prompt"] for x in d["labels"]] == list(s.prompts)
    assert [x["threshold"] for x in d["labels"]] == list(s.thresholds())


def test_show_bad_set_names_the_file(cli, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nversion: '1'\nlabels: [a, a]\n", encoding="utf-8")
    rc, out, err = cli("labels", "show", p)
    assert rc == 2 and out == ""
    assert f"{p}: duplicate label name 'a'" in err


def test_show_missing_bank(cli, tmp_path):
    rc, _, err = cli("labels", "show", tmp_path / "none.safetensors")
    assert rc == 2 and "none.safetensors" in err


def test_show_corrupt_bank(cli, tmp_path):
    p = tmp_path / "junk.safetensors"
    p.write_bytes(b"\x00" * 7)
    rc, _, err = cli("labels", "show", p)
    assert rc == 2 and "junk.safetensors" in err


def test_embed_refuses_non_safetensors_output_and_bad_set_before_loading_a_model(cli, tmp_path):
    rc, _, err = cli("labels", "embed", "--model", tmp_path / "no-model", "--labels", "core", "--out", tmp_path / "bank.json")
    assert rc == 2 and "safetensors" in err
    rc, _, err = cli("labels", "embed", "--model", tmp_path / "no-model", "--labels", tmp_path / "nope.yaml",
                     "--out", tmp_path / "b.safetensors")
    assert rc == 2 and "nope.yaml" in err


def test_labels_without_action_prints_help(cli):
    rc, out, _ = cli("labels")
    assert rc == 2 and "embed" in out
