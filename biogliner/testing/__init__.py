"""Test and benchmark helpers that ship with the package: random GLiNER checkpoints and synthetic
PubMed shards. Nothing here is used by the pipeline itself; entities from a random checkpoint are
meaningless."""
