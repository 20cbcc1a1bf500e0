"""biogliner.io: URL resolution, storage options from the environment, glob expansion."""

from __future__ import annotations

import pytest

from biogliner import io


def test_protocol_of():
    assert io.protocol_of("/tmp/x") == "file"
    assert io.protocol_of("s3://b/k") == "s3"
    assert io.protocol_of("GS://b/k") == "gs"


def test_endpoint_from_environment_only_for_s3(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    assert io.resolve_storage_options("s3://b/k") == {"endpoint_url": "http://127.0.0.1:9"}
    assert io.resolve_storage_options("/local/path") == {}
    # Explicit options win over the environment, in either spelling.
    assert io.resolve_storage_options("s3://b", {"endpoint_url": "http://x"}) == {"endpoint_url": "http://x"}
    explicit = {"client_kwargs": {"endpoint_url": "http://y"}}
    assert io.resolve_storage_options("s3://b", explicit) == explicit
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:10")
    assert io.resolve_storage_options("s3://b")["endpoint_url"] == "http://127.0.0.1:10"


def test_expand_globs_dirs_and_missing(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x2.xml.gz", "a/x1.xml.gz", "a/x1.xml.gz.md5", "b.xml"):
        (tmp_path / name).write_text("x")
    got = io.expand([str(tmp_path / "a" / "*.xml.gz"), str(tmp_path / "b.xml"), str(tmp_path / "a" / "x1.xml.gz")])
    assert got == [str(tmp_path / "a" / "x1.xml.gz"), str(tmp_path / "a" / "x2.xml.gz"), str(tmp_path / "b.xml")]
    assert len(io.expand([str(tmp_path / "a")])) == 3
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        io.expand([str(tmp_path / "nothing-here*.xml")])


def test_expand_and_read_on_s3(s3_bucket):
    fs, path = io.filesystem(f"{s3_bucket}/in/p1.xml")
    fs.pipe_file(f"{path}", b"<a/>")
    fs.pipe_file(path.replace("p1", "p2"), b"<b/>")
    urls = io.expand([f"{s3_bucket}/in/*.xml"])
    assert urls == [f"{s3_bucket}/in/p1.xml", f"{s3_bucket}/in/p2.xml"]
    with io.open_binary(urls[1]) as f:
        assert f.read() == b"<b/>"


def test_join():
    assert io.join("s3://b/root/", "/t/", "f.parquet") == "s3://b/root/t/f.parquet"
    assert io.join("/x", "y") == "/x/y"


def test_cli_help_lists_subcommands(capsys):
    from biogliner.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "COMMAND" in capsys.readouterr().out
    assert main([]) == 2
