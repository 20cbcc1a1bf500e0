"""Nightly test fixtures (helpers live in ``nightly_helpers``)."""
