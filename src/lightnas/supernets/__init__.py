"""Elastic super-networks (PyTorch): the contract in :mod:`lightnas.supernets.base`."""

from lightnas.supernets.registry import (
    SUPERNETS,
    create_supernet,
    list_supernets,
    register_supernet,
    supernet_from_config,
)

__all__ = ["SUPERNETS", "create_supernet", "list_supernets", "register_supernet", "supernet_from_config"]
