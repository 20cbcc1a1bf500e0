"""Bounded memory: a large file streams through a fresh process without holding its tree."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
from sources_fixtures import PUBMED_HEAD, pubmed_record

CHILD = r"""
import json, sys
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
from biogliner.sources import iter_events
base = hwm()
n = sum(1 for _ in iter_events(sys.argv[1]))
print(json.dumps({"events": n, "base_mb": base, "peak_mb": hwm()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_streaming_memory_is_bounded(tmp_path):
    n = 25_000
    long_abstract = "Imatinib inhibits <i>ABL1</i> kinase activity in K562 cells. " * 10
    body = "".join(pubmed_record(10_000_000 + i, abstract=long_abstract) for i in range(n))
    xml = (PUBMED_HEAD + body + "</PubmedArticleSet>\n").encode()
    assert len(xml) > 20_000_000  # a whole-file DOM of this costs a few hundred MB
    path = tmp_path / "pubmed26n9999.xml.gz"
    path.write_bytes(gzip.compress(xml, compresslevel=1))
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True, capture_output=True, text=True)
    res = json.loads(out.stdout)
    assert res["events"] == n
    assert res["peak_mb"] - res["base_mb"] < 40, res
