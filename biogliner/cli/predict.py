"""``biogliner predict``: zero-shot NER over lines of text, JSON lines out.

Input (``--input FILE|-``, default stdin; ``.gz`` files are decompressed; any fsspec URL): one
text per line, either JSON objects ``{"id": ..., "text": ...}`` or plain text (the id is then the
1-based line number). ``--format auto`` (default) decides from the first non-blank line: a JSON
object means JSON lines, anything else plain text. Output (``--output FILE|-``): one JSON object
per input text, in input order::

    {"id": 1, "entities": [{"start": 0, "end": 5, "text": "BRCA1", "label": "gene or protein", "score": 0.93}]}

``start``/``end`` are character offsets into the input ``text`` (Python string indices, i.e.
Unicode code points), so ``text[start:end] == entity["text"]``. Long texts are chunked by the
model, never truncated.

A bad line (invalid UTF-8 or JSON, no string ``text``) is reported on stderr with its line
number, counted, and skipped; the rest goes on. Blank lines are skipped and counted. The exit
status is 0 when every line was annotated, 1 when any line failed, 2 on a usage or setup error
(bad label set, checkpoint, bank). A summary goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_BAD_LINES, EXIT_USAGE = 0, 1, 2


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--revision``, ``--cache-dir``, ``--device``, ``--precision`` (shared with ``labels``)."""
    parser.add_argument(
        "--model",
        default=None,
        metavar="M",
        help="checkpoint: hub id, local dir or fsspec URL (default: $BIOGLINER_MODEL, else GLiNER-biomed bi-small, as annotate)",
    )
    parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) of --model")
    parser.add_argument("--cache-dir", default=None, help="local cache for checkpoints fetched from the hub or a URL")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="fp32 (default, exact) or bf16/fp16 autocast (faster, scores differ slightly)",
    )
    from biogliner.cli.model import add_labels_tokenizer_option

    add_labels_tokenizer_option(parser)


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict",
        help="zero-shot NER on lines of text (JSON lines out)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Examples:\n"
        "  biogliner predict --label 'gene or protein' --label disease < abstracts.txt\n"
        "  biogliner predict --labels biomed --input docs.jsonl --output ents.jsonl\n"
        "  biogliner predict --model ckpt/ --bank biomed.safetensors --threshold 0.6 --nested\n"
        "  biogliner predict --model ckpt/ --labels biomed --backend onnx < abstracts.txt   # onnxruntime on the CPU",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_options(p)
    from biogliner.cli.model import add_backend_option

    add_backend_option(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--labels", metavar="SET", help="label set: built-in name, YAML path/URL or pre-embedded bank (.safetensors) (default: biomed)"
    )
    src.add_argument("--bank", metavar="BANK", help="pre-embedded label bank (biogliner labels embed) for this --model")
    src.add_argument("--label", action="append", metavar="NAME", help="an ad-hoc label (repeatable); its name is its prompt")
    p.add_argument("--threshold", type=float, default=None, metavar="T", help="score threshold for EVERY label (overrides the set's)")
    p.add_argument("--nested", action="store_true", help="allow nested entities (flat_ner=false)")
    p.add_argument("--multi-label", action="store_true", help="allow several labels on the same span")
    p.add_argument("--input", default="-", metavar="FILE", help="input lines (default: - = stdin)")
    p.add_argument("--output", default="-", metavar="FILE", help="output JSON lines (default: - = stdout)")
    p.add_argument("--format", choices=("auto", "jsonl", "text"), default="auto", help="input format (default: auto)")
    p.add_argument("--text-field", default="text", help="JSON key of the text (default: text)")
    p.add_argument("--id-field", default="id", help="JSON key of the id (default: id; missing: the line number)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="texts per encoder batch (default: 8)")
    p.add_argument(
        "--block-size",
        type=int,
        default=None,
        metavar="N",
        help="texts read and handed to the model at once, for length bucketing (default: max(256, 8 x batch size))",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr (errors are still reported)")
    p.set_defaults(func=run)
    return p


# -- input -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Counts:
    lines: int = 0
    texts: int = 0
    blank: int = 0
    bad: int = 0
    entities: int = 0
    chars: int = 0
    bad_examples: list[str] = field(default_factory=list)


class BadLine(ValueError):
    pass


def open_input(url: str) -> IO[bytes]:
    if url == "-":
        return sys.stdin.buffer
    from biogliner import io as bio

    fh = bio.open_binary(url)
    if url.endswith(".gz"):
        import gzip

        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    return fh


def parse_line(raw: bytes, lineno: int, fmt: str, text_field: str, id_field: str) -> tuple[Any, str]:
    """``(id, text)`` of one input line (without its line terminator); raises :class:`BadLine`."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadLine(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if fmt == "text":
        return lineno, line
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadLine(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise BadLine(f"expected a JSON object, got {type(obj).__name__}")
    if text_field not in obj:
        raise BadLine(f"no {text_field!r} key")
    text = obj[text_field]
    if not isinstance(text, str):
        raise BadLine(f"{text_field!r} must be a string, got {type(text).__name__}")
    ident = obj.get(id_field, lineno)
    if isinstance(ident, (dict, list)):
        raise BadLine(f"{id_field!r} must be a string or number, got {type(ident).__name__}")
    return ident, text


def read_records(fh: IO[bytes], fmt: str, text_field: str, id_field: str, counts: Counts, source: str) -> Iterator[tuple[int, Any, str]]:
    """Yield ``(lineno, id, text)``; bad and blank lines are reported and counted, not yielded."""
    for lineno, raw in enumerate(fh, start=1):
        counts.lines += 1
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        if not raw.strip():
            counts.blank += 1
            continue
        if fmt == "auto":
            fmt = "jsonl" if raw.lstrip().startswith(b"{") and _is_json_object(raw) else "text"
            logger.debug("input format: %s", fmt)
        try:
            ident, text = parse_line(raw, lineno, fmt, text_field, id_field)
        except BadLine as exc:
            report_bad(counts, f"{source}: line {lineno}: {exc}")
            continue
        yield lineno, ident, text


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw.decode("utf-8")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False


def report_bad(counts: Counts, msg: str) -> None:
    counts.bad += 1
    print(f"biogliner predict: error: {msg}", file=sys.stderr)


# -- output ----------------------------------------------------------------------------------------


class Output:
    """Stdout, or a file written atomically (local: temp file + rename; object stores: on close)."""

    def __init__(self, url: str):
        self.url = url
        self._tmp: str | None = None
        if url == "-":
            self.fh: IO[bytes] = sys.stdout.buffer
            return
        from biogliner import io as bio

        if bio.protocol_of(url) == "file":
            import os

            path = url[len("file://") :] if url.startswith("file://") else url
            d = os.path.dirname(os.path.abspath(path))
            os.makedirs(d, exist_ok=True)
            self._final = path
            self._tmp = f"{path}.tmp-{os.getpid()}"
            self.fh = open(self._tmp, "wb")  # noqa: SIM115 - closed in close()
        else:
            fs, path = bio.filesystem(url)
            self.fh = fs.open(path, "wb")

    def write(self, record: dict[str, Any]) -> None:
        self.fh.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")

    def close(self, ok: bool = True) -> None:
        if self.url == "-":
            self.fh.flush()
            return
        self.fh.close()
        if self._tmp is not None:
            import os

            if ok:
                os.replace(self._tmp, self._final)
            else:
                os.unlink(self._tmp)


def entity_record(e) -> dict[str, Any]:
    return {"start": e.start, "end": e.end, "text": e.text, "label": e.label, "score": round(float(e.score), 6)}


# -- setup -----------------------------------------------------------------------------------------


def default_model() -> str:
    """``--model`` when not given: the same default as ``biogliner annotate`` ($BIOGLINER_MODEL,
    else biogliner.model.DEFAULT_MODEL), from its one owner."""
    from biogliner.pipeline.config import default_model as annotate_default

    return annotate_default()


def load_model(args):
    from biogliner.model import BiEncoder

    return BiEncoder.load(
        args.model or default_model(),
        revision=args.revision,
        device=args.device,
        precision=args.precision,
        cache_dir=args.cache_dir,
        backend=getattr(args, "backend", "torch"),  # `labels embed` has no --backend: it runs the labels encoder only
    )


def resolve_labels(args):
    """The label set of this run, through :func:`biogliner.labels.resolve` (as every command):
    ``--bank``, ``--label`` (an ad-hoc set) or ``--labels`` (default: biomed), with
    ``--threshold/--nested/--multi-label`` applied and recorded in the version. No model needed."""
    from biogliner.labels import LabelSet, LabelSetError, Overrides, is_bank_ref, resolve

    overrides = Overrides.from_flags(threshold=args.threshold, nested=args.nested, multi_label=args.multi_label)
    if args.bank:
        if not is_bank_ref(args.bank):
            raise LabelSetError(f"{args.bank}: a label set, not a label bank (*.safetensors): use --labels")
        return resolve(args.bank, overrides)
    if args.label:
        return resolve(LabelSet.from_names(args.label), overrides)
    return resolve(args.labels, overrides)


def resolve_bank(args, model):
    """The label bank to decode with: :func:`resolve_labels`, then the bank file checked against
    ``model`` or the set embedded with it."""
    return resolve_labels(args).bank_for(model)


# -- run -------------------------------------------------------------------------------------------


def run(args) -> int:
    if args.batch_size < 1:
        print("biogliner predict: error: --batch-size must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        print(f"biogliner predict: error: --threshold must be in (0, 1), got {args.threshold}", file=sys.stderr)
        return EXIT_USAGE
    from biogliner.pipeline.config import backend_problem

    problem = backend_problem(args.backend, args.device, args.precision)  # before reading or loading anything
    if problem:
        print(f"biogliner predict: error: --{problem}", file=sys.stderr)
        return EXIT_USAGE
    block = args.block_size or max(256, 8 * args.batch_size)
    counts = Counts()
    source = "<stdin>" if args.input == "-" else args.input
    try:  # fail fast on a missing input, before loading the model
        fh = open_input(args.input)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"biogliner predict: error: {source}: cannot read input: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _run(args, fh, counts, source, block)
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def _run(args, fh, counts: Counts, source: str, block: int) -> int:
    from biogliner.labels import LabelSetError
    from biogliner.model import CheckpointError, LabelBankError

    t0 = time.perf_counter()
    try:
        resolved = resolve_labels(args)  # bad labels fail before the model loads
        model = load_model(args)
        bank = resolved.bank_for(model)
    except (LabelSetError, CheckpointError, LabelBankError, FileNotFoundError) as exc:
        print(f"biogliner predict: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    t_load = time.perf_counter() - t0
    label_set = bank.label_set
    if not args.quiet:
        print(
            f"biogliner predict: model {model.fingerprint} ({args.backend}), labels {label_set.id} ({len(label_set.labels)} labels, "
            f"flat_ner={label_set.flat_ner}, multi_label={label_set.multi_label}), loaded in {t_load:.1f}s",
            file=sys.stderr,
        )
    try:
        out = Output(args.output)
    except OSError as exc:
        print(f"biogliner predict: error: {args.output}: cannot write output: {exc}", file=sys.stderr)
        return EXIT_USAGE

    t1 = time.perf_counter()
    ok = False
    try:
        pending: list[tuple[int, Any, str]] = []
        for rec in read_records(fh, args.format, args.text_field, args.id_field, counts, source):
            pending.append(rec)
            if len(pending) >= block:
                _flush(model, bank, pending, args.batch_size, out, counts, source)
                pending = []
        if pending:
            _flush(model, bank, pending, args.batch_size, out, counts, source)
        ok = True
    finally:
        out.close(ok=ok)
    dt = time.perf_counter() - t1
    if not args.quiet:
        rate = counts.texts / dt if dt > 0 else 0.0
        print(
            f"biogliner predict: {counts.texts} texts annotated, {counts.entities} entities, "
            f"{counts.bad} bad lines, {counts.blank} blank lines skipped, of {counts.lines} lines; "
            f"{dt:.1f}s ({rate:.1f} texts/s, {counts.chars / dt if dt > 0 else 0:.0f} chars/s)",
            file=sys.stderr,
        )
    return EXIT_BAD_LINES if counts.bad else EXIT_OK


def _flush(model, bank, pending, batch_size, out: Output, counts: Counts, source: str) -> None:
    texts = [t for _, _, t in pending]
    try:
        results = [r[0] for r in model.predict(texts, [bank], batch_size=batch_size)]
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # isolate the failing text(s): one bad text must not sink the block
        logger.warning("batch of %d texts failed (%s: %s); retrying one by one", len(texts), type(exc).__name__, exc)
        results = []
        for lineno, _, text in pending:
            try:
                results.append(model.predict([text], [bank], batch_size=1)[0][0])
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as one:
                report_bad(counts, f"{source}: line {lineno}: model failed: {type(one).__name__}: {one}")
                results.append(None)
    for (lineno, ident, text), ents in zip(pending, results, strict=True):
        if ents is None:
            continue
        counts.texts += 1
        counts.chars += len(text)
        counts.entities += len(ents)
        out.write({"id": ident, "entities": [entity_record(e) for e in ents]})
