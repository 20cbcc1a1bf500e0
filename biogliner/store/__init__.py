"""The output store: table layout, the manifest (commit records) and SQL views over committed files."""
