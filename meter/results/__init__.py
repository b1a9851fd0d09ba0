"""Run files: what a benchmark measured, with the metadata to trust it, written atomically."""
