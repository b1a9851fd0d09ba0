"""Reports: a self-contained HTML report of run files, and side-by-side comparison of two runs."""
