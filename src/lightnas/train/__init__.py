"""Super-network training."""
