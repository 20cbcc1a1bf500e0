"""Text handling for the model: regex word splitting (:mod:`.words`) and sentence-aligned
chunking under the model's budgets (:mod:`.chunks`)."""
