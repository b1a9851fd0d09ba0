"""``meter acceptance``: within minutes of renting a GPU, whether it is what was paid for, and the
workload table filled in, in one process under a hard time budget."""
