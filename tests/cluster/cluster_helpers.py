"""Paths and helpers shared by the tests of cluster/ (a uniquely named module: test files import
it directly; `from conftest import` would be ambiguous with several conftest.py on sys.path)."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERAY_DIR = ROOT / "cluster" / "kuberay"
LAUNCHER_YAML = ROOT / "cluster" / "aws" / "cluster.yaml"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMAS_DIR = ROOT.parent / "shared" / "schemas" / "kuberay"
# Where the Dockerfile puts the repository inside the image (WORKDIR).
IMAGE_ROOT = "/home/ray/biogliner"
MANIFESTS = sorted(KUBERAY_DIR.glob("*.yaml"))


def load_manifest(path: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(docs) == 1, f"{path.name}: expected one object, found {len(docs)}"
    return docs[0]


def image_path_to_repo(path: str) -> Path:
    """Map a path inside the image (``/home/ray/biogliner/jobs/x.py``) to the checkout."""
    assert path.startswith(IMAGE_ROOT + "/"), f"{path} is not under the image's project dir {IMAGE_ROOT}"
    return ROOT / path[len(IMAGE_ROOT) + 1 :]


def python_commands(shell: str) -> list[list[str]]:
    """The ``python SCRIPT ARGS...`` commands in a shell string (split on ; && ||), env prefixes dropped."""
    out = []
    for part in shell.replace("&&", ";").replace("||", ";").split(";"):
        words = shlex.split(part)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]  # VAR=value prefixes
        if words and words[0] in ("python", "python3"):
            out.append(words)
    return out


def committed_output(out_dir: Path) -> dict:
    """What a finished annotation job committed under ``out_dir``, read from its Delta tables:
    ``inputs`` (the input file names its units' current parse commits record), ``not_committed``
    (units or input files whose status is not ``committed``), ``rows`` (table -> rows in the files
    its Delta log names), ``orphans`` (data files on disk no Delta log names)."""
    import pyarrow.parquet as pq

    from biogliner.schema import TABLES
    from biogliner.store.output import Output

    output = Output(str(out_dir))
    state = output.state()
    members = state.members()
    not_committed = [(r.input, r.error) for r in state.parse.values() if r.status != "committed"]
    not_committed += [(m["input"], m.get("error")) for _, m in members.values() if m.get("status", "committed") != "committed"]
    rows, orphans = {}, []
    for table in TABLES:
        files = output.files(table)
        rows[table] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        on_disk = {str(p) for p in (out_dir / table).rglob("*.parquet") if "_delta_log" not in p.parts}
        orphans += sorted(on_disk - set(files))
    return {
        "inputs": sorted(m.get("url", m["input"]).rsplit("/", 1)[-1] for _, m in members.values()),
        "not_committed": not_committed,
        "units": sorted(state.parse),
        "label_sets": sorted(state.label_sets),
        "rows": rows,
        "orphans": orphans,
    }
