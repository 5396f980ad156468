"""Names of the super-network training recipes (torch-free, for config validation)."""

RECIPES = ("sandwich", "warmup-sandwich", "progressive", "sorted")
