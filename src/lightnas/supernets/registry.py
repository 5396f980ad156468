"""Registry of super-networks: ``@register_supernet(name)`` and one factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightnas.errors import LightnasError

_SUPERNETS: dict[str, Callable[..., Any]] = {}


def register_supernet(name: str) -> Callable[[type], type]:
    """Class decorator: make a super-network class available by ``name``."""

    def deco(cls: type) -> type:
        _SUPERNETS[name] = cls
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return deco


def list_supernets() -> list[str]:
    _import_builtin()
    return sorted(_SUPERNETS)


def create_supernet(name: str, **config: Any) -> Any:
    """Build a registered super-network; ``config`` goes to its config class."""
    _import_builtin()
    if name not in _SUPERNETS:
        raise LightnasError(f"unknown super-network {name!r} (choose from {', '.join(sorted(_SUPERNETS))})")
    return _SUPERNETS[name](**config)


def supernet_from_config(name: str, config: dict[str, Any]) -> Any:
    """Rebuild a super-network from the plain dict stored in a checkpoint."""
    _import_builtin()
    if name not in _SUPERNETS:
        raise LightnasError(f"unknown super-network {name!r} in checkpoint")
    cls = _SUPERNETS[name]
    return cls(cls.config_class.from_dict(config))


def _import_builtin() -> None:
    from lightnas.supernets import mobilenet  # noqa: F401
