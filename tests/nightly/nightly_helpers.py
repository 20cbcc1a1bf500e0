"""Helpers of the nightly tests (imported by name: tests/nightly is on sys.path)."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# random scores of the tiny checkpoint sit around 0.5: at this threshold it finds a few entities
TINY_THRESHOLD = 0.515
CREDS = {"key": "testing", "secret": "testing"}

B = "pubmed:7100000"
AFTER_NIGHT_1 = {f"{B}1": "pubmed26n0001", f"{B}2": "pubmed26n0002", f"{B}4": "pubmed26n0001",
                 f"{B}5": "pubmed26n0001", f"{B}6": "pubmed26n0002"}
AFTER_NIGHT_2 = {f"{B}1": "pubmed26n0001", f"{B}2": "pubmed26n0003", f"{B}3": "pubmed26n0003",
                 f"{B}5": "pubmed26n0003"}


def stage_inputs(dest: Path, nights: int) -> Path:
    """baseline/ and updatefiles/ as NLM lays them out, with the update files of ``nights`` nights."""
    (dest / "baseline").mkdir(parents=True, exist_ok=True)
    (dest / "updatefiles").mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "baseline" / "pubmed26n0001.xml", dest / "baseline")
    shutil.copy(FIXTURES / "updatefiles" / "README.txt", dest / "updatefiles")
    for n in range(nights):
        shutil.copy(FIXTURES / "updatefiles" / f"pubmed26n{2 + n:04d}.xml", dest / "updatefiles")
    return dest


def upload_dir(local: Path, url: str) -> None:
    from biogliner import io as bio

    fs, root = bio.filesystem(url)
    for p in sorted(local.rglob("*")):
        if p.is_file():
            fs.pipe_file(f"{root}/{p.relative_to(local).as_posix()}", p.read_bytes())


def nightly_args(inputs: str, out: str, model: str, *extra: str) -> list[str]:
    return ["--pubmed-baseline", f"{inputs}/baseline", "--pubmed-updates", f"{inputs}/updatefiles",
            "--output", out, "--model", model, "--threshold", str(TINY_THRESHOLD), "--progress", "none",
            "--rows-per-call", "16", "--block-rows", "8", *extra]


def current(root: str, storage_options=None) -> dict[str, str]:
    from biogliner.store import views

    con = views.connect(root, storage_options)
    rows = con.execute("SELECT doc_id, input FROM current_documents WHERE source = 'pubmed'").fetchall()
    assert len(rows) == len({r[0] for r in rows})
    return dict(rows)


def table_dump(root: str, storage_options=None, source: str = "pubmed") -> dict[str, list]:
    """Every view's rows of ``source``, run ids aside (they differ between runs by design), sorted."""
    from biogliner.store import views

    con = views.connect(root, storage_options)
    out = {}
    for v in views.BASE_VIEWS + views.CURRENT_VIEWS:
        out[v] = con.execute(f"SELECT * EXCLUDE (run_id) FROM {v} WHERE source = ? ORDER BY ALL", [source]).fetchall()
    out["manifest"] = con.execute(
        "SELECT source, input, status, size, label_sets FROM manifest WHERE source = ? ORDER BY ALL", [source]).fetchall()
    return out
