"""Few-shot fine-tuning of the GLiNER bi-encoder (``biogliner finetune``), on Ray Train.

- :mod:`.loss`: gliner 0.2.29's ``BiEncoderSpanModel.loss``, on the flat span layout;
- :mod:`.forward`: the differentiable training forward through the folded span head;
- :mod:`.examples`: gold corpora -> chunked training examples and batches;
- :mod:`.export`: a fine-tuned network -> a checkpoint in the published layout;
- :mod:`.loop` / :mod:`.trainer`: the Ray Train ``TorchTrainer`` run (the CLI starts Ray).

Nothing here is imported by the inference path; heavy imports (torch, ray) stay inside modules.
"""
