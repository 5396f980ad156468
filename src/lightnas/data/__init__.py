"""Datasets (torch-free loading; see ``sources``)."""

from lightnas.data.sources import Dataset, load_dataset

__all__ = ["Dataset", "load_dataset"]
