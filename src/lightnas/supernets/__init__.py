"""Elastic super-networks (PyTorch)."""

from lightnas.supernets.registry import create_supernet, list_supernets, register_supernet, supernet_from_config

__all__ = ["create_supernet", "list_supernets", "register_supernet", "supernet_from_config"]
