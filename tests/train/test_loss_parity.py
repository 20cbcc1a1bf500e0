"""The fine-tuning objective equals gliner 0.2.29's ``BiEncoderSpanModel`` loss, and so do the
gradients, on checkpoints gliner builds (BERT and DeBERTa-v2 text encoders), for flat and nested
gold and several label counts, in the deterministic setting (``negatives=1``, no masking, eval
mode: no dropout)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gliner")

from biogliner.eval.gold import GoldDoc, Span  # noqa: E402
from biogliner.text.words import split_words  # noqa: E402

TEXTS = [
    "Aspirin inhibits COX-1 in human platelets and reduces thrombosis.",
    "The BRCA1 gene is mutated in breast cancer patients from Norway.",
    "Metformin lowers glucose in type 2 diabetes, while insulin resistance persists in obese mice.",
]
# (text index, first word, last word, label): word indices of split_words(TEXTS[i])
FLAT = [(0, 0, 0, "chemical"), (0, 2, 2, "gene"), (0, 8, 8, "disease"), (1, 1, 1, "gene"), (1, 6, 7, "disease"),
        (2, 0, 0, "chemical"), (2, 4, 4, "chemical"), (2, 6, 8, "disease")]
NESTED = FLAT + [(0, 2, 4, "chemical"), (1, 1, 2, "gene"), (1, 6, 8, "disease"), (2, 4, 4, "gene"), (2, 12, 14, "disease")]
LABEL_SETS = {1: ["chemical"], 3: ["chemical", "gene", "disease"], 5: ["gene", "species", "chemical", "cell line", "disease"]}
SETTINGS = {
    "focal": dict(loss_type="focal", alpha=0.75, gamma=2.0, label_smoothing=0.1, reduction="sum"),
    "bce-mean": dict(loss_type="bce", alpha=-1.0, gamma=0.0, label_smoothing=0.0, reduction="mean"),
}


def load_reference(path):
    import warnings

    from gliner import GLiNER

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GLiNER.from_pretrained(str(path), local_files_only=True, strict=True)


def _docs(gold):
    out = []
    for i, text in enumerate(TEXTS):
        ws = split_words(text)
        spans = tuple(sorted(Span(ws.starts[s], ws.ends[e], lab) for t, s, e, lab in gold if t == i))
        out.append(GoldDoc(str(i), text, spans))
    return out


def _ours(path, docs, labels, setting):
    from biogliner.model import BiEncoder
    from biogliner.train.examples import build_examples, collate
    from biogliner.train.forward import TrainForward
    from biogliner.train.loss import span_loss

    model = BiEncoder.load(str(path), device="cpu")
    fwd = TrainForward(model.net).eval()
    label_of = {lab: i for i, lab in enumerate(labels)}
    examples, report = build_examples(docs, model.preprocessor(), label_of, model.config.max_width)
    unlabelled = sum(1 for d in docs for s in d.spans if s.label not in label_of)
    assert dict(report.dropped) == ({"type without a label": unlabelled} if unlabelled else {})
    assert report.chunks == len(docs) and report.spans == sum(len(d.spans) for d in docs) - unlabelled
    batch = collate(examples, len(labels), model.config.max_width, model.preprocessor().tokenizer.pad_token_id)
    tok = model.labels_tokenizer(labels, return_tensors="pt", truncation=True, padding="longest")
    logits = fwd(batch.input_ids, batch.attention_mask, batch.flat_pos, tok["input_ids"], tok["attention_mask"])
    assert logits.dim() == 3  # [N, K, C]: no [B, L, K, D] tensor
    loss = span_loss(logits, batch.targets, batch.span_mask, **setting)
    loss.backward()
    return float(loss), {k: p.grad for k, p in fwd.net.named_parameters()}


def _reference(path, docs, labels, setting):
    from gliner.data_processing.collator import BiEncoderSpanDataCollator

    ref = load_reference(path)
    model = ref.model.eval()
    items = []
    for d in docs:
        ws = split_words(d.text)
        ner = [[ws.starts.index(s.start), ws.ends.index(s.end), s.label] for s in d.spans]
        items.append({"tokenized_text": ws.words, "ner": ner})
    collator = BiEncoderSpanDataCollator(ref.config, data_processor=ref.data_processor)
    batch = collator(items, entity_types=[list(labels) for _ in items])
    kw = {k: v for k, v in setting.items() if k != "loss_type"}
    if setting["loss_type"] == "bce":
        kw.update(alpha=-1.0, gamma=0.0)
    out = model(**batch, negatives=1.0, masking="none", **kw)
    out.loss.backward()
    return float(out.loss), {k: p.grad for k, p in model.named_parameters()}


@pytest.mark.parametrize("encoder", ["bert", "deberta"])
@pytest.mark.parametrize(
    "gold,n_labels,setting",
    [("flat", 1, "focal"), ("flat", 3, "bce-mean"), ("nested", 3, "focal"), ("nested", 5, "bce-mean"), ("nested", 5, "focal")],
)
def test_loss_and_gradients_match_gliner(gliner_checkpoints, encoder, gold, n_labels, setting):
    from biogliner.model.checkpoint import map_key

    path = gliner_checkpoints[encoder]
    docs = _docs(FLAT if gold == "flat" else NESTED)
    labels = LABEL_SETS[n_labels]
    ours_loss, ours_grads = _ours(path, docs, labels, SETTINGS[setting])
    ref_loss, ref_grads = _reference(path, docs, labels, SETTINGS[setting])
    assert ours_loss > 0
    assert abs(ours_loss - ref_loss) <= 1e-5 * max(1.0, abs(ref_loss)), (ours_loss, ref_loss)
    scale = max(float(g.abs().max()) for g in ref_grads.values() if g is not None)
    compared = 0
    for key, g_ref in ref_grads.items():
        ours_key = map_key(key)
        if g_ref is None:  # the dead LSTM, the labels encoder's pooler: no gradient in either
            assert ours_key is None or ours_grads.get(ours_key) is None, key
            continue
        g = ours_grads[ours_key]
        assert g is not None, f"{key}: gradient in gliner, none here"
        ref_max = float(g_ref.abs().max())
        diff = float((g - g_ref).abs().max())
        # Relative to the parameter's own gradient; gradients that are zero in exact arithmetic
        # (attention key biases: softmax is shift invariant) are rounding noise, compared absolutely.
        assert diff <= 1e-4 * max(ref_max, 1e-6 * scale), f"{key}: max |diff| {diff:.3g}, max |ref| {ref_max:.3g}"
        compared += 1
    assert compared > 20


def test_loss_counts_only_spans_inside_their_text():
    from biogliner.train.loss import span_loss

    logits = torch.zeros(4, 3, 2, requires_grad=True)
    targets = torch.zeros(4, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.bool)
    loss = span_loss(logits, targets, mask, loss_type="bce", reduction="sum")
    assert loss.item() == pytest.approx(6 * 2 * torch.log(torch.tensor(2.0)).item(), rel=1e-6)
    loss.backward()
    assert torch.equal(logits.grad[~mask], torch.zeros_like(logits.grad[~mask]))
    mean = span_loss(logits, targets, mask, loss_type="bce", reduction="mean")
    assert mean.item() == pytest.approx(2 * torch.log(torch.tensor(2.0)).item(), rel=1e-6)
