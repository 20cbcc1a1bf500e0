"""``biogliner parse PATH_OR_URL...``: print the reader's events as JSON lines.

One JSON object per event on stdout (``op`` = ``upsert`` | ``delete``, every field of the
:class:`~biogliner.schema.Document` / :class:`~biogliner.schema.Deletion`, ``passages`` as
``[{"section", "text"}]``). Skips go to stderr, one counted line each (``--skips`` writes them as
JSON lines to a file instead). A file that fails (:class:`~biogliner.sources.SourceError`) keeps
the events before the failure -- for a cut file exactly the records whose end tag was read, never
the cut one -- gets one ``error`` line on stderr (the typed error: file, last good record, bytes
read), and the remaining files are still read; the exit status is then 1. A summary line ends
stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "parse",
        help="read PubMed / PMC XML files and print their events as JSON lines",
        description=__doc__.split("\n\n", 1)[0],
    )
    p.add_argument("inputs", nargs="+", metavar="PATH_OR_URL", help="files, folders or globs (local, s3://...); .gz or not")
    p.add_argument("--skips", metavar="FILE", help="write skipped records as JSON lines to FILE instead of stderr")
    p.add_argument("--no-verify-md5", action="store_true", help="do not check .md5 sidecars")
    p.add_argument("--licenses", help="PMC: comma-separated allow-list of license_code values (default: any)")
    p.add_argument("--include-non-oa", action="store_true", help="PMC: read versions whose metadata says not open access")
    p.add_argument("--include-retracted", action="store_true", help="PMC: read retracted versions")
    p.add_argument("--require-metadata", action="store_true", help="PMC: skip per-version XML with no metadata JSON")
    p.set_defaults(func=run)
    return p


def event_dict(event) -> dict:
    """A JSON-ready dict of a Document or Deletion (passages as ``{"section", "text"}``)."""
    from dataclasses import asdict

    d = asdict(event)
    if "passages" in d:
        d["passages"] = [{"section": p["section"], "text": p["text"]} for p in d["passages"]]
    return d


def run(args: argparse.Namespace) -> int:
    import json

    from biogliner import io as bio
    from biogliner.schema import Skip
    from biogliner.sources import PmcFilter, SourceError, is_input_file, iter_events

    pmc_filter = PmcFilter(
        require_open_access=not args.include_non_oa,
        licenses=frozenset(x.strip() for x in args.licenses.split(",") if x.strip()) if args.licenses else None,
        exclude_retracted=not args.include_retracted,
        require_metadata=args.require_metadata,
    )
    counts: Counter[str] = Counter()
    skip_reasons: Counter[str] = Counter()
    failed: list[str] = []
    try:
        urls = [u for u in bio.expand(args.inputs) if is_input_file(u)]
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    skips_out = open(args.skips, "w", encoding="utf-8") if args.skips else None
    out = sys.stdout
    try:
        for url in urls:
            counts["files"] += 1
            try:
                for event in iter_events(url, verify_md5=not args.no_verify_md5, pmc_filter=pmc_filter):
                    if isinstance(event, Skip):
                        counts["skips"] += 1
                        skip_reasons[event.reason] += 1
                        if skips_out is not None:
                            skips_out.write(json.dumps(event_dict(event), ensure_ascii=False) + "\n")
                        else:
                            rid = f" {event.record_id}" if event.record_id else ""
                            print(
                                f"skip {counts['skips']}: {event.source_file}[{event.position}]{rid}: {event.reason}"
                                + (f" ({event.detail})" if event.detail else ""),
                                file=sys.stderr,
                            )
                        continue
                    counts[event.op + "s"] += 1
                    if getattr(event, "status", None) == "Book":
                        counts["books"] += 1
                    out.write(json.dumps(event_dict(event), ensure_ascii=False) + "\n")
            except SourceError as exc:
                counts["errors"] += 1
                failed.append(url)
                out.flush()
                print(f"error: {exc}", file=sys.stderr)
    finally:
        out.flush()
        if skips_out is not None:
            skips_out.close()
    reasons = ", ".join(f"{k}={v}" for k, v in sorted(skip_reasons.items()))
    print(
        f"parsed {counts['files']} file(s): {counts['upserts']} upserts"
        + (f" ({counts['books']} PubmedBookArticle)" if counts["books"] else "")
        + f", {counts['deletes']} deletes, "
        f"{counts['skips']} skips" + (f" ({reasons})" if reasons else "") + f", {counts['errors']} failed file(s)",
        file=sys.stderr,
    )
    return 1 if failed else 0
