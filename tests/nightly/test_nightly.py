"""The nightly run: ordered listing, idempotence, the lock, a killed run completed by a rerun,
and read-time resolution over real parsed update files (tiny random checkpoint, local Ray)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from nightly_helpers import (
    AFTER_NIGHT_1,
    AFTER_NIGHT_2,
    CREDS,
    FIXTURES,
    TINY_THRESHOLD,
    current,
    nightly_args,
    orphans,
    stage_inputs,
    table_dump,
    upload_dir,
    write_inventory,
    write_pmc_articles,
)

from biogliner import io as bio
from biogliner.cli import main
from biogliner.pipeline.config import AnnotateConfig, ConfigError
from biogliner.pipeline.nightly import NightlyConfig, list_inputs, run_nightly
from biogliner.store.lock import LockHeldError, StoreLock
from biogliner.store.output import Output

ROOT = Path(__file__).resolve().parents[2]
PMC_UNIT = re.compile(r"^pmc-\d{8}T\d{6}-[0-9a-f]{10}$")


def _cfg(inputs: str, out: str, model, **kw) -> NightlyConfig:
    a = AnnotateConfig(output=out, model=str(model), labels=("biomed",), threshold=TINY_THRESHOLD,
                       storage_options=kw.pop("storage_options", {}), progress="none", rows_per_call=16, block_rows=8)
    return NightlyConfig(annotate=a, pubmed_updates=(f"{inputs}/updatefiles",), pubmed_baseline=(f"{inputs}/baseline",),
                         **kw)


def _no_ray():
    raise AssertionError("nothing new: the nightly must not start Ray nor load the model")


def test_listing_order_superseded_and_ignored(tmp_path):
    (tmp_path / "baseline").mkdir()
    (tmp_path / "updatefiles").mkdir()
    (tmp_path / "baseline" / "pubmed26n0001.xml.gz").write_bytes(b"")
    (tmp_path / "baseline" / "pubmed26n0001.xml.gz.md5").write_bytes(b"")
    for name in ("pubmed26n1402.xml.gz", "pubmed26n1335.xml.gz", "pubmed26n1401.xml.gz", "pubmed25n1500.xml.gz",
                 "notes.xml", "README.txt", "pubmed26n1335.xml.gz.md5"):
        (tmp_path / "updatefiles" / name).write_bytes(b"")
    cfg = _cfg(str(tmp_path), str(tmp_path / "out"), "unused")
    urls, skipped = list_inputs(cfg)
    assert [u.rsplit("/", 1)[-1] for u in urls] == [
        "pubmed26n0001.xml.gz", "pubmed26n1335.xml.gz", "pubmed26n1401.xml.gz", "pubmed26n1402.xml.gz"]
    assert [u.rsplit("/", 1)[-1] for u in skipped.superseded] == ["pubmed25n1500.xml.gz"]
    assert [u.rsplit("/", 1)[-1] for u in skipped.ignored] == ["notes.xml"]
    # without a baseline, nothing is superseded: the older year sorts first
    urls, skipped = list_inputs(NightlyConfig(annotate=cfg.annotate, pubmed_updates=(f"{tmp_path}/updatefiles",)))
    assert urls[0].endswith("pubmed25n1500.xml.gz") and not skipped.superseded
    with pytest.raises(ConfigError, match="pubmed-updates"):
        NightlyConfig(annotate=cfg.annotate)


@pytest.fixture(scope="module")
def two_nights(s3_server, ray_session, tiny_checkpoint, tmp_path_factory):
    """Baseline + night 1, the same night again, night 2: on S3 (moto), PMC input included."""
    import shutil

    import boto3
    import s3fs

    from biogliner.sources import sample_corpus_path

    bucket = f"nightly-e2e-{os.getpid()}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    s3fs.S3FileSystem.clear_instance_cache()
    local = stage_inputs(tmp_path_factory.mktemp("nightly") / "in", nights=1)
    shutil.copytree(sample_corpus_path() / "pmc" / "PMC0000001.1", local / "pmc" / "PMC0000001.1")
    inputs, out = f"s3://{bucket}/in", f"s3://{bucket}/out"
    upload_dir(local, inputs)
    cfg = _cfg(inputs, out, tiny_checkpoint, storage_options=CREDS, pmc=(f"{inputs}/pmc",))
    res = {"out": out, "cfg": cfg}
    res["night1"] = run_nightly(cfg)
    res["current1"] = current(out, CREDS)
    res["state1"] = Output(out, CREDS).state()
    res["commits_version1"] = Output(out, CREDS).delta.version("commits")
    fs, root = bio.filesystem(out, CREDS)
    res["locks_after_night1"] = fs.find(f"{root}/_locks")
    before = {p: fs.info(p)["ETag"] for p in fs.find(root)}
    res["again"] = run_nightly(cfg, ensure_ray=_no_ray)
    fs.invalidate_cache()
    res["unchanged"] = {p: fs.info(p)["ETag"] for p in fs.find(root)} == before
    upload_dir(FIXTURES / "updatefiles", inputs + "/updatefiles")  # adds pubmed26n0003.xml
    res["night2"] = run_nightly(cfg)
    res["dump"] = table_dump(out, CREDS)
    res["orphans"] = orphans(out, CREDS)
    return res


@pytest.mark.slow
def test_night_one(two_nights):
    n1 = two_nights["night1"]
    assert n1.status == "ok", n1.summary and n1.summary.render()
    # PubMed files are their own units, in file order; the PMC article is one unit of its own
    assert [(u.source, u.input) for u in n1.plan.todo[:2]] == [("pubmed", "pubmed26n0001"), ("pubmed", "pubmed26n0002")]
    pmc_unit = n1.plan.todo[2]
    assert len(n1.plan.todo) == 3 and pmc_unit.source == "pmc" and PMC_UNIT.match(pmc_unit.input), pmc_unit.input
    assert [m.input for m in pmc_unit.members] == ["PMC0000001.1"]
    assert n1.summary.files_committed == 3 and n1.summary.units_committed == 3
    state = two_nights["state1"]
    assert sorted(state.parse) == [("pmc", pmc_unit.input), ("pubmed", "pubmed26n0001"), ("pubmed", "pubmed26n0002")]
    assert all(r.status == "committed" for r in state.parse.values())
    assert [m["input"] for m in state.parse[("pmc", pmc_unit.input)].inputs] == ["PMC0000001.1"]
    assert sorted(state.label_sets) == sorted(state.parse)
    assert two_nights["current1"] == AFTER_NIGHT_1
    assert two_nights["locks_after_night1"] == [], "the lock is released"


@pytest.mark.slow
def test_same_night_twice_is_a_noop(two_nights):
    again = two_nights["again"]
    assert again.status == "nothing_to_do" and not again.plan.todo and len(again.plan.done) == 3
    assert two_nights["unchanged"], "a no-op nightly wrote something"


@pytest.mark.slow
def test_night_two_current_views_and_history(two_nights, capsys):
    from biogliner.store import views

    n2, out = two_nights["night2"], two_nights["out"]
    assert n2.status == "ok" and [f.input for f in n2.plan.todo] == ["pubmed26n0003"]
    assert n2.summary.files_committed == 1
    assert current(out, CREDS) == AFTER_NIGHT_2
    assert two_nights["orphans"] == [], "data files no Delta log names"
    con = views.connect(out, CREDS)
    # the history keeps every occurrence: pubmed:71000002 was seen in three files
    assert con.execute("SELECT list(input ORDER BY input) FROM documents WHERE doc_id = 'pubmed:71000002'").fetchall() == [
        (["pubmed26n0001", "pubmed26n0002", "pubmed26n0003"],)]
    # every recorded deletion, including the PMID never seen
    assert sorted(r[0] for r in con.execute("SELECT doc_id FROM deletions").fetchall()) == [
        "pubmed:71000003", "pubmed:71000004", "pubmed:71000006", "pubmed:79999999"]
    # entities: the history holds every committed run's rows
    n_ents = con.execute("SELECT count(*) FROM entities").fetchall()[0][0]
    summaries = [two_nights["night1"].summary, n2.summary]
    assert n_ents > 0 and n_ents == sum(sum(per.values()) for s in summaries for per in s.entities.values())
    # current entities are exactly the entities of the current occurrences
    cur = con.execute("SELECT count(*) FROM current_entities").fetchall()[0][0]
    expected = con.execute(
        "SELECT count(*) FROM entities e JOIN current_documents d USING (source, doc_id, input)").fetchall()[0][0]
    assert cur == expected
    assert con.execute(
        "SELECT count(*) FROM current_entities WHERE doc_id IN ('pubmed:71000004', 'pubmed:71000006', 'pubmed:79999999')"
    ).fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM current_documents WHERE source = 'pmc'").fetchall() == [(1,)]

    # and `biogliner sql` on the S3 output
    rc = main(["sql", "--output", out, "--storage-options", json.dumps(CREDS), "--format", "json",
               "SELECT doc_id, input FROM current_documents WHERE source = 'pubmed' ORDER BY doc_id"])
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rc == 0 and {r["doc_id"]: r["input"] for r in rows} == AFTER_NIGHT_2
    # as of the commits version before night 2: the index as it was after night 1
    rc = main(["sql", "--output", out, "--storage-options", json.dumps(CREDS), "--format", "json",
               "--as-of", str(two_nights["commits_version1"]),
               "SELECT doc_id, input FROM current_documents WHERE source = 'pubmed' ORDER BY doc_id"])
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rc == 0 and {r["doc_id"]: r["input"] for r in rows} == AFTER_NIGHT_1


def test_concurrent_nightly_is_refused(tmp_path, capsys):
    inputs = stage_inputs(tmp_path / "in", nights=1)
    out = str(tmp_path / "out")
    holder = StoreLock(out, "nightly", ttl_s=600, run_id="the-other-nightly")
    held = holder.acquire()
    with pytest.raises(LockHeldError, match="the-other-nightly"):
        run_nightly(_cfg(str(inputs), out, "unused"), ensure_ray=_no_ray)
    rc = main(["nightly", *nightly_args(str(inputs), out, "unused")])
    err = capsys.readouterr().err
    assert rc == 75
    assert "another nightly is running" in err and "run_id=the-other-nightly" in err and held.expires_at in err
    assert holder.read().token == held.token, "the refused run left the lock alone"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["_locks"], "the refused run wrote something"
    assert Output(out).state().records == ()
    holder.release()


def test_stale_lock_expires(tmp_path, caplog):
    """A lock left by a run on another machine that stopped heartbeating: taken over after expiry."""
    from datetime import UTC, datetime, timedelta

    inputs = stage_inputs(tmp_path / "in", nights=0)
    out = str(tmp_path / "out")
    lock_path = tmp_path / "out" / "_locks" / "nightly.json"
    lock_path.parent.mkdir(parents=True)
    past = datetime.now(UTC) - timedelta(minutes=5)
    lock_path.write_text(json.dumps({
        "name": "nightly", "owner": {"host": "crashed-node.example", "pid": 4242, "run_id": "crashed"},
        "token": "t", "write_id": "w", "acquired_at": (past - timedelta(hours=1)).isoformat(),
        "refreshed_at": (past - timedelta(minutes=15)).isoformat(), "expires_at": past.isoformat(), "ttl_s": 900.0,
    }))
    cfg = _cfg(str(inputs), out, "unused", dry_run=True)
    with caplog.at_level(logging.WARNING, logger="biogliner.store.lock"):
        result = run_nightly(cfg, ensure_ray=_no_ray)
    assert result.status == "dry_run" and [f.input for f in result.plan.todo] == ["pubmed26n0001"]
    assert any("took over expired lock" in r.message and "run_id=crashed" in r.message for r in caplog.records)
    assert not lock_path.exists(), "released after the run"
    # an unexpired lock of that other machine would have refused the run
    lock_path.write_text(json.dumps({
        "name": "nightly", "owner": {"host": "crashed-node.example", "pid": 4242, "run_id": "alive"},
        "token": "t", "write_id": "w2", "acquired_at": past.isoformat(), "refreshed_at": past.isoformat(),
        "expires_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(), "ttl_s": 900.0,
    }))
    with pytest.raises(LockHeldError, match="run_id=alive"):
        run_nightly(cfg, ensure_ray=_no_ray)


@pytest.mark.slow
def test_killed_nightly_then_rerun_equals_a_clean_nightly(tmp_path, ray_session, tiny_checkpoint, two_nights):
    """Killed after its first commit, rerun: the tables equal the uninterrupted nights' (on S3)."""
    inputs = str(stage_inputs(tmp_path / "in", nights=2))
    killed = str(tmp_path / "killed")
    model = str(tiny_checkpoint)
    env = dict(os.environ, RAY_ADDRESS=ray_session.get_runtime_context().gcs_address)
    r = subprocess.run([sys.executable, "-m", "biogliner", "nightly", *nightly_args(inputs, killed, model),
                        "--fault", "driver.after_commit=1", "--commit-wait", "0"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 137, r.stderr[-3000:]
    assert len(Output(killed).state().parse) == 1
    left = StoreLock(killed, "nightly").read()
    assert left is not None and left.owner["pid"] != os.getpid(), "the killed run left its lock behind"

    # the rerun: the dead run's lock is taken over (same host, process gone) and the rest is done
    assert main(["nightly", *nightly_args(inputs, killed, model)]) == 0
    assert StoreLock(killed, "nightly").read() is None
    state = Output(killed).state()
    assert sorted(state.parse) == [("pubmed", f"pubmed26n000{i}") for i in (1, 2, 3)]
    assert all(r.status == "committed" for r in state.parse.values()) and sorted(state.label_sets) == sorted(state.parse)
    assert current(killed) == AFTER_NIGHT_2
    assert table_dump(killed) == two_nights["dump"]
    # and once more: nothing to do
    assert main(["nightly", *nightly_args(inputs, killed, model)]) == 0
    assert table_dump(killed) == two_nights["dump"]


def _inventory(base: Path, date: str, keys: list[str]) -> Path:
    """An inventory without Size: rows (bucket, key, last modified, ETag ``etag<i>``)."""
    return write_inventory(base, date, [("pmc-oa-opendata", k, "2026-11-20T00:00:00.000Z", f"etag{i}") for i, k in enumerate(keys)])


def test_pmc_inventory_lists_new_article_versions(tmp_path):
    from biogliner.pipeline.nightly import plan_nightly, pmc_inventory_files, pmc_inventory_urls

    articles = tmp_path / "pmc"
    for name in ("PMC11.1", "PMC11.2", "PMC22.1", "PMC33.1"):
        (articles / name).mkdir(parents=True)
        (articles / name / f"{name}.xml").write_text("<article/>")
    _inventory(tmp_path, "2026-11-19T01-00Z", ["metadata/PMC11.1.json"])  # an older inventory
    inv = _inventory(tmp_path, "2026-11-20T01-00Z", [
        "metadata/PMC11.1.json", "metadata/PMC11.2.json", "metadata/PMC22.1.json", "metadata/PMC33.1.json",
        "metadata/not-an-article.txt"])
    urls = pmc_inventory_urls(str(inv), pmc_root=str(articles))  # the latest dated inventory
    assert [u.rsplit("/", 1)[-1] for u in urls] == ["PMC11.1.xml", "PMC11.2.xml", "PMC22.1.xml", "PMC33.1.xml"]
    assert urls[0] == f"{articles}/PMC11.1/PMC11.1.xml"
    listed = {f.input: f for f in pmc_inventory_files(str(inv), pmc_root=str(articles))}
    # identified from the inventory row (no Size column here): ETag and last-modified
    assert listed["PMC22.1"].etag == "inventory:etag2" and listed["PMC22.1"].size is None
    assert listed["PMC22.1"].mtime == 1795132800.0  # 2026-11-20T00:00:00Z

    out = str(tmp_path / "out")
    output = Output(out)
    # PMC11.1 committed with the label set; PMC22.1 parsed but lacking it; both as the inventory lists them
    for unit, name, sets in (("pmc-20261101T000000-aaaaaaaaaa", "PMC11.1", ["biomed@1-t0.515"]),
                             ("pmc-20261101T000000-bbbbbbbbbb", "PMC22.1", [])):
        rec = {**listed[name].record(), "status": "committed"}
        output.commit_tables("pmc", unit, "r0", parse={}, entities={s: _no_entities() for s in sets}, model="m",
                             inputs=[rec], label_set_hashes={s: _biomed_hash() for s in sets})
    a = AnnotateConfig(output=out, model="unused", labels=("biomed",), threshold=TINY_THRESHOLD)
    cfg = NightlyConfig(annotate=a, pmc_inventory=str(inv), pmc_root=str(articles), dry_run=True)
    plan = plan_nightly(cfg, output)
    assert [f.input for f in plan.done] == ["PMC11.1"]
    units = {u.input: u for u in plan.todo}
    assert len(units) == 2, plan.describe()
    # PMC22.1: its unit is run for the missing label set only (its parse is not written again)
    old = units.pop("pmc-20261101T000000-bbbbbbbbbb")
    assert [m.input for m in old.members] == ["PMC22.1"] and old.parse_version is None and old.label_sets == ("biomed@1-t0.515",)
    # the new article versions: one new unit
    ((name, new),) = units.items()
    assert PMC_UNIT.match(name) and [m.input for m in new.members] == ["PMC11.2", "PMC33.1"] and new.parse_version == 1
    result = run_nightly(cfg, ensure_ray=_no_ray)
    assert result.status == "dry_run" and sum(len(u.members) for u in result.plan.todo) == 3


def _no_entities():
    from biogliner.schema import TABLES

    return TABLES["entities"].empty_table()


def _biomed_hash() -> str:
    from biogliner.pipeline.banks import resolve_label_sets

    (s,) = resolve_label_sets(("biomed",), TINY_THRESHOLD, {})
    return s.label_set.content_hash()


class _RayWouldStart(Exception):
    pass


def test_each_input_is_identified_once_per_nightly(tmp_path, tiny_checkpoint, monkeypatch):
    """The nightly plans once: the job takes its identified inputs instead of listing them again
    (it still checks them against the output: model and label-set content)."""
    import biogliner.pipeline.plan as plan_mod

    inputs = stage_inputs(tmp_path / "in", nights=1)
    seen: list[str] = []
    real = plan_mod.identify
    monkeypatch.setattr(plan_mod, "identify", lambda url, so=None: seen.append(url) or real(url, so))

    def stop():  # the job reached Ray: its plan and model checks are done
        raise _RayWouldStart

    with pytest.raises(_RayWouldStart):
        run_nightly(_cfg(str(inputs), str(tmp_path / "out"), tiny_checkpoint), ensure_ray=stop)
    assert seen and len(seen) == len(set(seen)), sorted(seen)


def _pmc_rows(names: list[str], etags: dict[str, str], modified: dict[str, str]) -> list[tuple]:
    """Inventory rows (bucket, key, size, last modified, ETag) of the metadata objects of ``names``."""
    return [("pmc-oa-opendata", f"metadata/{n}.json", "565", modified.get(n, "2026-11-20T00:00:00.000Z"),
             etags.get(n, f"e-{n}")) for n in names]


INVENTORY_SCHEMA = "Bucket, Key, Size, LastModifiedDate, ETag"


@pytest.mark.slow
def test_pmc_inventory_units_and_a_metadata_only_change(tmp_path, ray_session, tiny_checkpoint):
    """20 PMC articles listed by an inventory: one run makes ONE unit (one partition per table, not
    20). The same inventory again: nothing to do. A new inventory whose row for one committed
    article version has another ETag (its metadata object rewritten: licence, retraction; so a
    later last-modified too): that version alone is parsed again, into a new unit whose name sorts
    after the old unit's, and the current view takes it from there."""
    from deltalake import DeltaTable

    from biogliner.pipeline.nightly import plan_nightly

    articles = tmp_path / "pmc"
    names = write_pmc_articles(articles, 101, 20)
    inv = write_inventory(tmp_path, "2026-11-20T01-00Z", _pmc_rows(names, {}, {}), schema=INVENTORY_SCHEMA)
    out = str(tmp_path / "out")
    a = AnnotateConfig(output=out, model=str(tiny_checkpoint), labels=("biomed",), threshold=TINY_THRESHOLD,
                       progress="none", rows_per_call=16, block_rows=8)
    cfg = NightlyConfig(annotate=a, pmc_inventory=str(inv), pmc_root=str(articles))

    first = run_nightly(cfg)
    assert first.status == "ok", first.summary and first.summary.render()
    (unit,) = first.plan.todo
    assert unit.source == "pmc" and PMC_UNIT.match(unit.input) and sorted(m.input for m in unit.members) == names
    assert first.summary.files_committed == 20 and first.summary.units_committed == 1 and first.summary.documents == 20
    state = Output(out).state()
    assert list(state.parse) == [("pmc", unit.input)] and list(state.label_sets) == [("pmc", unit.input)]
    rec = state.parse[("pmc", unit.input)]
    assert sorted(m["input"] for m in rec.inputs) == names and all(m["etag"] == f"inventory:e-{m['input']}" for m in rec.inputs)
    for table in ("documents", "passages", "entities"):
        t = DeltaTable(f"{out}/{table}").to_pyarrow_table()
        assert t.num_rows > 0, table
        assert set(zip(t.column("source").to_pylist(), t.column("input").to_pylist())) == {("pmc", unit.input)}, table
        assert [p.name for p in (tmp_path / "out" / table / "source=pmc").iterdir()] == [f"input={unit.input}"], table
    docs = DeltaTable(f"{out}/documents").to_pyarrow_table()
    assert sorted(docs.column("doc_id").to_pylist()) == sorted(f"pmc:{n}" for n in names)
    assert orphans(out) == []

    # the same inventory again: nothing to do, no Ray
    again = run_nightly(cfg, ensure_ray=_no_ray)
    assert again.status == "nothing_to_do" and not again.plan.todo and len(again.plan.done) == 20

    # the next day's inventory: PMC0000107.1's metadata object was rewritten (new ETag, later date)
    changed = "PMC0000107.1"
    write_inventory(tmp_path, "2026-11-21T01-00Z", _pmc_rows(names, {changed: "e-new"}, {changed: "2026-11-21T00:00:00.000Z"}),
                    schema=INVENTORY_SCHEMA)
    planned = plan_nightly(cfg, Output(out))  # the folder of dated inventories: the latest is read
    (redo,) = planned.todo
    assert [m.input for m in redo.members] == [changed] and len(planned.done) == 19
    assert PMC_UNIT.match(redo.input) and redo.input > unit.input, (redo.input, unit.input)
    assert redo.parse_version == 1  # a new unit, not a new version of the old one

    second = run_nightly(cfg)
    assert second.status == "ok" and second.summary.files_committed == 1 and second.summary.units_committed == 1
    state = Output(out).state()
    assert sorted(state.parse) == sorted([("pmc", unit.input), ("pmc", redo.input)])
    holder, member = state.members()[("pmc", changed)]
    assert holder.input == redo.input and member["etag"] == "inventory:e-new"
    assert state.members()[("pmc", names[0])][0].input == unit.input
    # the history holds both parses of the article version; the current view, the newer unit's
    docs = DeltaTable(f"{out}/documents").to_pyarrow_table().to_pylist()
    assert sorted(r["input"] for r in docs if r["doc_id"] == f"pmc:{changed}") == sorted([unit.input, redo.input])
    from biogliner.store import views

    con = views.connect(out)
    assert con.execute("SELECT input FROM current_documents WHERE doc_id = ?", [f"pmc:{changed}"]).fetchall() == [(redo.input,)]
    assert con.execute("SELECT count(*) FROM current_documents WHERE source = 'pmc'").fetchall() == [(20,)]
    # and unchanged again: nothing to do
    assert run_nightly(cfg, ensure_ray=_no_ray).status == "nothing_to_do"
