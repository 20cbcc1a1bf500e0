"""BigBio (and other hub) corpora from their Parquet conversions: a local folder and a file:// URL laid
out as the hub's refs/convert/parquet branch, the hub-name path pointed at such a mirror, the
errors that say how to get the data, and ``biogliner eval`` end to end on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from biogliner.eval.gold import GoldFormatError  # noqa: E402
from biogliner.eval.readers import read_gold  # noqa: E402
from biogliner.eval.readers.parquet import HUB_PARQUET_ENV, ParquetNotFound  # noqa: E402

TITLE = "Aspirin reduces breast cancer risk."
ABSTRACT = "Tamoxifen and BRCA1 were studied in MCF-7 cells."

# The BigBio kb schema as the hub's Parquet conversion stores it (nested lists and structs).
_OFFSETS = pa.list_(pa.list_(pa.int32()))
KB_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("document_id", pa.string()),
        ("passages", pa.list_(pa.struct([("id", pa.string()), ("type", pa.string()), ("text", pa.list_(pa.string())), ("offsets", _OFFSETS)]))),
        (
            "entities",
            pa.list_(
                pa.struct(
                    [
                        ("id", pa.string()),
                        ("type", pa.string()),
                        ("text", pa.list_(pa.string())),
                        ("offsets", _OFFSETS),
                        ("normalized", pa.list_(pa.struct([("db_name", pa.string()), ("db_id", pa.string())]))),
                    ]
                )
            ),
        ),
        ("events", pa.list_(pa.struct([("id", pa.string())]))),
        ("coreferences", pa.list_(pa.struct([("id", pa.string())]))),
        ("relations", pa.list_(pa.struct([("id", pa.string()), ("type", pa.string())]))),
    ]
)


def _doc(doc_id: str, entities: list[tuple[str, str, int, int]], *, title=TITLE, abstract=ABSTRACT) -> dict:
    a0 = len(title) + 1
    text = title + " " + abstract
    ents = []
    for k, (mention, typ, s, e) in enumerate(entities):
        assert text[s:e] == mention  # the fixture is right by construction
        ents.append({"id": f"{doc_id}-e{k}", "type": typ, "text": [mention], "offsets": [[s, e]], "normalized": []})
    return {
        "id": doc_id,
        "document_id": doc_id,
        "passages": [
            {"id": f"{doc_id}-t", "type": "title", "text": [title], "offsets": [[0, len(title)]]},
            {"id": f"{doc_id}-a", "type": "abstract", "text": [abstract], "offsets": [[a0, a0 + len(abstract)]]},
        ],
        "entities": ents,
        "events": [],
        "coreferences": [],
        "relations": [],
    }


def _ents(offset_of_abstract: int) -> list[tuple[str, str, int, int]]:
    return [
        ("Aspirin", "Chemical", 0, 7),
        ("breast cancer", "Disease", 16, 29),
        ("Tamoxifen", "Chemical", offset_of_abstract, offset_of_abstract + 9),
        ("BRCA1", "Gene", offset_of_abstract + 14, offset_of_abstract + 19),
    ]


TEST_DOCS = [_doc("1001", _ents(len(TITLE) + 1)), _doc("1002", _ents(len(TITLE) + 1)[:2])]
TRAIN_DOCS = [_doc("9001", [])]


def write_conversion(root: Path, config: str = "bc5cdr_bigbio_kb", *, layout: str = "current") -> Path:
    """``root`` laid out as a hub Parquet conversion: test split in two files, train in one."""
    cdir = root / config
    if layout == "current":
        (cdir / "test").mkdir(parents=True)
        (cdir / "train").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(TEST_DOCS[:1], schema=KB_SCHEMA), cdir / "test" / "0000.parquet")
        pq.write_table(pa.Table.from_pylist(TEST_DOCS[1:], schema=KB_SCHEMA), cdir / "test" / "0001.parquet")
        pq.write_table(pa.Table.from_pylist(TRAIN_DOCS, schema=KB_SCHEMA), cdir / "train" / "0000.parquet")
    else:  # the older flat layout: <config>/<name>-<split>.parquet
        cdir.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(TEST_DOCS, schema=KB_SCHEMA), cdir / "bc5cdr-test.parquet")
        pq.write_table(pa.Table.from_pylist(TRAIN_DOCS, schema=KB_SCHEMA), cdir / "bc5cdr-train.parquet")
    (root / "bc5cdr_source" / "test").mkdir(parents=True)  # another configuration, not read
    return root


def spans(corpus) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for d in corpus.docs:
        assert all(0 <= s.start < s.end <= len(d.text) for s in d.spans)
        out[d.id] = [(d.text[s.start : s.end], s.label) for s in d.spans]
    return out


WANT_PASSAGES = {
    "1001#title": [("Aspirin", "Chemical"), ("breast cancer", "Disease")],
    "1001#abstract": [("Tamoxifen", "Chemical"), ("BRCA1", "Gene")],
    "1002#title": [("Aspirin", "Chemical"), ("breast cancer", "Disease")],
    "1002#abstract": [],
}


@pytest.mark.parametrize("layout", ["current", "older"])
def test_local_conversion_folder_and_file_url(tmp_path, layout):
    root = write_conversion(tmp_path / "bigbio" / "bc5cdr", layout=layout)
    c = read_gold(str(root), dataset_config="bc5cdr_bigbio_kb")
    assert c.format == "bigbio-kb"
    assert spans(c) == WANT_PASSAGES
    assert "bc5cdr_bigbio_kb" in c.source and c.source.endswith(":test")
    # the same through a file:// URL, per document, and the train split
    d = read_gold(root.as_uri(), dataset_config="bc5cdr_bigbio_kb", unit="document")
    assert [x.id for x in d.docs] == ["1001", "1002"] and d.docs[0].text == TITLE + " " + ABSTRACT
    assert spans(d)["1001"] == [("Aspirin", "Chemical"), ("breast cancer", "Disease"), ("Tamoxifen", "Chemical"), ("BRCA1", "Gene")]
    assert [x.id for x in read_gold(str(root), dataset_config="bc5cdr_bigbio_kb", split="train", unit="document").docs] == ["9001"]
    # a config folder, or (current layout) a split folder, given directly
    assert spans(read_gold(str(root / "bc5cdr_bigbio_kb"))) == WANT_PASSAGES
    if layout == "current":
        assert spans(read_gold(str(root / "bc5cdr_bigbio_kb" / "test"))) == WANT_PASSAGES
        single = read_gold(str(root / "bc5cdr_bigbio_kb" / "test" / "0000.parquet"))
        assert set(spans(single)) == {"1001#title", "1001#abstract"}


def test_conversion_errors_name_what_is_there(tmp_path):
    root = write_conversion(tmp_path / "conv")
    with pytest.raises(ParquetNotFound, match="several configurations \\(bc5cdr_bigbio_kb, bc5cdr_source\\).*--dataset-config"):
        read_gold(str(root))
    with pytest.raises(ParquetNotFound, match="no configuration 'nope'.*bc5cdr_bigbio_kb"):
        read_gold(str(root), dataset_config="nope")
    with pytest.raises(ParquetNotFound, match="no split 'validation' \\(there: test, train\\)"):
        read_gold(str(root), dataset_config="bc5cdr_bigbio_kb", split="validation")
    partial = tmp_path / "big" / "cfg" / "partial-test"
    partial.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(TEST_DOCS, schema=KB_SCHEMA), partial / "0000.parquet")
    with pytest.raises(ParquetNotFound, match="only a partial conversion"):
        read_gold(str(tmp_path / "big"), dataset_config="cfg")
    bad = tmp_path / "bad" / "cfg" / "test"
    bad.mkdir(parents=True)
    (bad / "0000.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(GoldFormatError, match="0000.parquet: not a readable Parquet file"):
        read_gold(str(tmp_path / "bad"))


def test_hub_name_reads_the_conversion_from_a_mirror(tmp_path, monkeypatch):
    """``--data bigbio/bc5cdr`` reads ``<conversion of bigbio/bc5cdr>/bc5cdr_bigbio_kb/test`` (the kb
    config is BigBio's default here); the conversion's location comes from BIOGLINER_HUB_PARQUET,
    the hub's refs/convert/parquet branch unless set."""
    write_conversion(tmp_path / "mirror" / "bigbio" / "bc5cdr")
    monkeypatch.setenv(HUB_PARQUET_ENV, (tmp_path / "mirror").as_uri() + "/{name}")
    monkeypatch.chdir(tmp_path)  # "bigbio/bc5cdr" is not a local path here
    c = read_gold("bigbio/bc5cdr")
    assert spans(c) == WANT_PASSAGES and c.source == "hub:bigbio/bc5cdr[bc5cdr_bigbio_kb]:test"
    assert spans(read_gold("hub:bigbio/bc5cdr", dataset_config="bc5cdr_bigbio_kb")) == WANT_PASSAGES


def test_hub_name_without_the_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(HUB_PARQUET_ENV, (tmp_path / "empty").as_uri() + "/{name}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GoldFormatError) as err:
        read_gold("bigbio/bc5cdr", split="test")
    msg = str(err.value)
    assert msg.startswith("hub:bigbio/bc5cdr[bc5cdr_bigbio_kb]:test: cannot load the dataset")
    assert "no such directory" in msg  # why the conversion failed
    assert "datasets.load_dataset:" in msg  # why datasets failed
    assert (
        "hf download bigbio/bc5cdr --repo-type dataset --revision refs/convert/parquet "
        "--include 'bc5cdr_bigbio_kb/test/*' --local-dir DIR" in msg
    )
    assert "--data DIR" in msg and "PubTator" in msg and "BioC" in msg


def test_classlabel_tags_from_the_parquet_schema(tmp_path):
    """A token-tagging dataset's conversion stores its ClassLabel names in the Parquet schema's
    ``huggingface`` metadata: integer tags are read with their names."""
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-Disease", "I-Disease"])),
        }
    )
    ds = datasets.Dataset.from_list(
        [
            {"id": "s0", "tokens": ["Breast", "cancer", "kills", "."], "ner_tags": [1, 2, 0, 0]},
            {"id": "s1", "tokens": ["No", "disease", "here"], "ner_tags": [0, 0, 0]},
        ],
        features=features,
    )
    (tmp_path / "ncbi" / "ncbi_disease" / "test").mkdir(parents=True)
    ds.to_parquet(str(tmp_path / "ncbi" / "ncbi_disease" / "test" / "0000.parquet"))
    c = read_gold(str(tmp_path / "ncbi"))  # one configuration: chosen without --dataset-config
    assert c.format == "hub-tags"
    assert spans(c) == {"s0": [("Breast cancer", "Disease")], "s1": []}
    # without the names, integer tags are an error, not a guess
    pq.write_table(pa.table({"id": ["s0"], "tokens": [["a"]], "ner_tags": [[1]]}), tmp_path / "plain.parquet")
    with pytest.raises(GoldFormatError, match="integer tags without ClassLabel names"):
        read_gold(str(tmp_path / "plain.parquet"))


def test_cli_eval_on_a_conversion_mirror(tmp_path, monkeypatch, tiny_checkpoint):
    """``biogliner eval --data bigbio/bc5cdr`` end to end: the report's gold counts are the fixture's
    and its scores are the metrics of the model's own predictions on those texts."""
    from biogliner.cli import main
    from biogliner.eval.labels import plan_labels
    from biogliner.eval.metrics import score
    from biogliner.model import BiEncoder

    write_conversion(tmp_path / "mirror" / "bigbio" / "bc5cdr")
    monkeypatch.setenv(HUB_PARQUET_ENV, str(tmp_path / "mirror") + "/{name}")
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "r.json"
    rc = main(["eval", "--model", str(tiny_checkpoint), "--data", "bigbio/bc5cdr", "--threshold", "0.5", "--no-sweep",
               "--report", str(report), "--quiet"])
    assert rc == 0
    r = json.loads(report.read_text())
    assert r["data"] == "bigbio/bc5cdr" and r["format"] == "bigbio-kb" and r["n_docs"] == 4
    assert r["n_gold"] == sum(len(v) for v in WANT_PASSAGES.values()) == 6
    # 0.5 is the set's own threshold: the override changes nothing, so the id is unchanged
    assert r["label_set"] == "eval@1" and r["labels"] == {"Chemical": "chemical", "Disease": "disease", "Gene": "gene"}
    corpus = read_gold("bigbio/bc5cdr")
    plan = plan_labels(corpus.labels)
    model = BiEncoder.load(str(tiny_checkpoint), device="cpu")
    bank = model.embed_labels(plan.label_set.with_options(threshold=0.5))
    preds = [[e for e in model.predict([d.text], [bank])[0][0]] for d in corpus.docs]
    from dataclasses import replace

    relabelled = [[replace(e, label=plan.to_gold[e.label]) for e in p] for p in preds]
    for mode in ("strict", "relaxed"):
        s = score([list(d.spans) for d in corpus.docs], relabelled, mode)
        assert (r[mode]["tp"], r[mode]["fp"], r[mode]["fn"]) == (s.micro.tp, s.micro.fp, s.micro.fn)
