"""Names of the super-network training recipes (torch-free, for config validation)."""

RECIPES = ("warmup-sandwich", "sandwich", "progressive", "sorted")
