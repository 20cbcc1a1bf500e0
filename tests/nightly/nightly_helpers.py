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
    """Every table's committed rows of ``source`` (read straight from the Delta tables, kept when
    the commits table holds their unit's current run), run ids aside (they differ between runs by
    design), sorted; plus the current commits rows of ``source``: (kind, input, status, label set,
    version, its input files (name, size, status)). URLs and md5/ETag identities are left out:
    the same files on S3 and on local disk are identified differently."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from biogliner.schema import TABLES
    from biogliner.store.delta import delta_storage_options
    from biogliner.store.output import Output

    state = Output(root, storage_options).state()
    runs = set(state.committed_runs())
    ents = set(state.current_label_sets())
    opts = delta_storage_options(root, storage_options) or None
    out: dict[str, list] = {}
    for table in TABLES:
        try:
            rows = DeltaTable(f"{root.rstrip('/')}/{table}", storage_options=opts).to_pyarrow_table().to_pylist()
        except TableNotFoundError:
            rows = []
        keep = []
        for r in rows:
            if r["source"] != source:
                continue
            if table == "entities":
                if (r["source"], r["input"], r["label_set"], r["run_id"]) not in ents:
                    continue
            elif (r["source"], r["input"], r["run_id"]) not in runs:
                continue
            r.pop("run_id")
            keep.append(tuple(sorted(r.items())))
        out[table] = sorted(keep, key=repr)
    current = list(state.parse.values()) + [r for sets in state.label_sets.values() for r in sets.values()]
    out["commits"] = sorted(
        (r.kind, r.input, r.status, r.label_set, r.version, tuple(sorted((m["input"], m.get("size"), m.get("status")) for m in r.inputs)))
        for r in current if r.source == source
    )
    return out


def orphans(root: str, storage_options=None) -> list[str]:
    """Data files under ``root`` that no Delta log names (left by a crash; invisible to readers)."""
    from biogliner import io as bio
    from biogliner.schema import TABLES
    from biogliner.store.output import Output

    output = Output(root, storage_options)
    fs, base = bio.filesystem(root, storage_options)
    out = []
    for table in TABLES:
        if not fs.exists(f"{base}/{table}"):
            continue
        named = {u.split("://", 1)[-1].rstrip("/") for u in output.files(table)}
        on_disk = {p for p in fs.find(f"{base}/{table}") if p.endswith(".parquet") and "/_delta_log/" not in p}
        out += sorted(p for p in on_disk if p not in named and p.lstrip("/") not in {n.lstrip("/") for n in named})
    return out


def write_pmc_articles(dest: Path, first: int, n: int) -> list[str]:
    """``n`` PMC article versions ``PMC{id}.1/PMC{id}.1.xml`` (+ metadata JSON) under ``dest``:
    copies of the sample article with distinct PMCIDs (and PMIDs). Returns their names."""
    from biogliner.sources import sample_corpus_path

    import hashlib
    import json

    src = sample_corpus_path() / "pmc" / "PMC0000001.1"
    xml = (src / "PMC0000001.1.xml").read_text()
    meta = json.loads((src / "PMC0000001.1.json").read_text())
    names = []
    for k in range(first, first + n):
        pmcid, pmid = f"PMC{k:07d}", 90_000_000 + k
        name = f"{pmcid}.1"
        (dest / name).mkdir(parents=True, exist_ok=True)
        data = xml.replace("PMC0000001", pmcid).replace("90000101", str(pmid)).encode()
        (dest / name / f"{name}.xml").write_bytes(data)
        md5 = hashlib.md5(data).hexdigest()  # the metadata's xml_url carries the XML's md5: the reader checks it
        m = {**meta, "pmcid": pmcid, "pmid": pmid, "xml_url": f"s3://pmc-oa-opendata/{name}/{name}.xml?md5={md5}"}
        (dest / name / f"{name}.json").write_text(json.dumps(m, indent=2))
        names.append(name)
    return names


def write_inventory(base: Path, date: str, rows: list[tuple], *, schema: str = "Bucket, Key, LastModifiedDate, ETag") -> Path:
    """A copy of the PMC bucket's S3 inventory layout under ``base``: ``<date>/manifest.json`` and
    its data file, one CSV row per tuple of ``rows`` (the columns of ``schema``). Returns the folder
    of dated inventories."""
    import gzip
    import json

    inv = base / "inventory-reports" / "pmc-oa-opendata" / "metadata"
    (inv / date).mkdir(parents=True)
    (inv / "data").mkdir(exist_ok=True)
    data_key = f"inventory-reports/pmc-oa-opendata/metadata/data/{date}.csv.gz"
    text = "".join(",".join(f'"{v}"' for v in row) + "\n" for row in rows)
    (base / data_key).write_bytes(gzip.compress(text.encode()))
    (inv / date / "manifest.json").write_text(json.dumps({
        "sourceBucket": "pmc-oa-opendata", "destinationBucket": "arn:aws:s3:::pmc-oa-opendata",
        "fileFormat": "CSV", "fileSchema": schema,
        "files": [{"key": data_key, "size": 1, "MD5checksum": "x"}],
    }))
    return inv
