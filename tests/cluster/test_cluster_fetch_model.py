"""cluster/docker/fetch_model.py: the node-start model fetch (local dir, s3:// mirror, hub id)."""

from __future__ import annotations

import filecmp
import importlib.util
import json
import subprocess
import sys

import pytest
from cluster_helpers import ROOT

SCRIPT = ROOT / "cluster" / "docker" / "fetch_model.py"


@pytest.fixture(scope="module")
def fm():
    spec = importlib.util.spec_from_file_location("biogliner_fetch_model", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve string annotations through sys.modules
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


def _same_tree(a, b) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    bookkeeping = (".biogliner-fetch-complete", "biogliner-manifest.json")
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name not in bookkeeping)
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def test_source_kinds_and_default_dest(fm, tmp_path):
    assert fm.source_kind("Ihor/gliner-biomed-bi-small-v1.0") == "hub"
    assert fm.source_kind("s3://b/models/x") == "url"
    assert fm.source_kind(str(tmp_path)) == "local"
    with pytest.raises(ValueError, match="neither"):
        fm.source_kind("not-a-dir-nor-hub-id")
    assert fm.default_dest("s3://b/models/gliner-x/", "/c") .as_posix() == "/c/gliner-x"
    assert fm.default_dest("Ihor/gliner-biomed-bi-small-v1.0", "/c").as_posix() == "/c/gliner-biomed-bi-small-v1.0"


def test_fetch_local_dir_is_complete_marked_and_idempotent(fm, tiny_checkpoint, tmp_path):
    dest = tmp_path / "cache" / "tiny"
    out = fm.fetch(fm.FetchConfig(source=str(tiny_checkpoint), dest=dest))
    assert out == dest and _same_tree(tiny_checkpoint, dest)
    marker = json.loads((dest / fm.MARKER).read_text())
    assert marker["source"] == str(tiny_checkpoint) and marker["files"] == sum(1 for p in tiny_checkpoint.rglob("*") if p.is_file())
    # A second run on the node does nothing: a file added to the cache survives, the source is not read.
    (dest / "sentinel").write_text("kept")
    fm.fetch(fm.FetchConfig(source=str(tmp_path / "gone"), dest=dest))
    assert (dest / "sentinel").read_text() == "kept"
    assert [p.name for p in dest.parent.iterdir()] == ["tiny"], "no temporary directory left behind"
    manifest = json.loads((dest / "biogliner-manifest.json").read_text())
    assert set(manifest["files"]) == {p.relative_to(tiny_checkpoint).as_posix() for p in tiny_checkpoint.rglob("*") if p.is_file()}


def _published_layout(tiny_checkpoint, root, repo_id="test-org/labels-enc"):
    """``tiny_checkpoint`` as GLiNER-biomed checkpoints are published: no labels_tokenizer/, the
    labels tokenizer only in a Hugging Face cache (models--org--name/{blobs,snapshots,refs/main})."""
    import hashlib
    import os
    import shutil

    src = root / "published"
    shutil.copytree(tiny_checkpoint, src)
    cfg = json.loads((src / "gliner_config.json").read_text())
    cfg["labels_encoder"] = repo_id
    (src / "gliner_config.json").write_text(json.dumps(cfg))
    repo = root / "hf-cache" / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / ("ab" * 20)
    snap.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("ab" * 20)
    for f in (src / "labels_tokenizer").iterdir():
        blob = repo / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        blob.write_bytes(f.read_bytes())
        os.symlink(os.path.relpath(blob, snap), snap / f.name)
    shutil.rmtree(src / "labels_tokenizer")
    return src, root / "hf-cache"


def test_fetch_of_a_published_checkpoint_adds_its_labels_tokenizer(fm, tiny_checkpoint, tmp_path, monkeypatch):
    src, cache = _published_layout(tiny_checkpoint, tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("BIOGLINER_LABELS_TOKENIZER", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="no labels tokenizer for labels encoder 'test-org/labels-enc'"):
        fm.fetch(fm.FetchConfig(source=str(src), dest=tmp_path / "c" / "pub"))
    assert not (tmp_path / "c" / "pub").exists()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    dest = fm.fetch(fm.FetchConfig(source=str(src), dest=tmp_path / "c" / "pub"))
    # the node-local copy is self-contained: the original (gliner 0.2.29) layout's files, with the
    # published config
    assert (dest / "gliner_config.json").read_bytes() == (src / "gliner_config.json").read_bytes()
    (dest / "gliner_config.json").write_bytes((tiny_checkpoint / "gliner_config.json").read_bytes())
    assert _same_tree(tiny_checkpoint, dest)
    (dest / "gliner_config.json").write_bytes((src / "gliner_config.json").read_bytes())
    from biogliner.model import BiEncoder

    expected = BiEncoder.load(str(src), device="cpu").fingerprint  # labels tokenizer from the cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    assert BiEncoder.load(str(dest), device="cpu").fingerprint == expected


def test_fetch_from_s3_mirror(fm, tiny_checkpoint, s3_bucket, tmp_path):
    import s3fs

    fs = s3fs.S3FileSystem()  # endpoint from AWS_ENDPOINT_URL (the loopback test server)
    remote = f"{s3_bucket}/models/tiny-bi"
    fs.put(str(tiny_checkpoint), remote, recursive=True)
    dest = fm.fetch(fm.FetchConfig(source=remote, dest=tmp_path / "models" / "tiny-bi"))
    assert _same_tree(tiny_checkpoint, dest)
    assert (dest / "labels_tokenizer" / "tokenizer.json").is_file()


def test_not_a_checkpoint_fails_and_leaves_nothing(fm, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "README.md").write_text("no config here")
    dest = tmp_path / "cache" / "src"
    with pytest.raises(FileNotFoundError, match="gliner_config.json"):
        fm.fetch(fm.FetchConfig(source=str(src), dest=dest))
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_a_checkpoint_that_does_not_load_is_not_published(fm, tiny_checkpoint, tmp_path):
    import shutil

    src = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, src)
    weights = src / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a truncated download
    dest = tmp_path / "cache" / "broken"
    with pytest.raises(ValueError, match="does not load"):
        fm.fetch(fm.FetchConfig(source=str(src), dest=dest))
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    # --no-verify publishes it as is (the actors would then fail to load it).
    fm.fetch(fm.FetchConfig(source=str(src), dest=dest, verify=False))
    assert (dest / fm.MARKER).is_file()


def test_cli_prints_the_directory_and_fails_clearly(tiny_checkpoint, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    ok = subprocess.run(
        [sys.executable, str(SCRIPT), "--source", str(tiny_checkpoint), "--cache", str(tmp_path / "c")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == str(tmp_path / "c" / tiny_checkpoint.name)
    # A hub id with the hub unreachable (offline): exit 1, the message names the source.
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "--source", "nobody/no-such-model", "--cache", str(tmp_path / "c")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert bad.returncode == 1
    assert "nobody/no-such-model" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "c" / "no-such-model").exists()
