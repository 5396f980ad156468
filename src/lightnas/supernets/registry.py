"""Registry of super-networks: ``@register_supernet(name)`` and one factory.

The built-in super-networks are the modules listed in :data:`SUPERNETS`'s
``builtins``, imported on the first look-up; other packages register through
the ``lightnas.supernets`` entry-point group (see :mod:`lightnas.registry`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lightnas.errors import LightnasError
from lightnas.registry import Registry

if TYPE_CHECKING:  # the registry is read (names checked) without torch
    from lightnas.supernets.base import Supernet

SUPERNETS: Registry[type[Supernet]] = Registry(
    "super-network",
    builtins=(
        "lightnas.supernets.mobilenet",
        "lightnas.supernets.vit",
        "lightnas.supernets.hybrid",
        "lightnas.elastic.supernet",
    ),
    group="lightnas.supernets",
)
register_supernet = SUPERNETS.register


def list_supernets(*, standalone: bool = False) -> list[str]:
    """The registered names; ``standalone`` keeps those built from their config's
    defaults alone (not the ones that need a user's input, see ``Supernet.needs_input``)."""
    names = SUPERNETS.names()
    return [n for n in names if not SUPERNETS.get(n).needs_input] if standalone else names


def create_supernet(
    name: str, input_shape: tuple[int, int, int] = (1, 28, 28), n_classes: int = 10, **options: Any
) -> Any:
    """Build a registered super-network for inputs of ``input_shape`` (C, H, W)
    and ``n_classes`` classes; ``options`` are fields of its config class."""
    cls = SUPERNETS.get(name)
    return cls(cls.config_class.from_dict({"input_shape": tuple(input_shape), "n_classes": n_classes, **options}))


def supernet_from_config(name: str, config: dict[str, Any]) -> Any:
    """Rebuild a super-network from the plain dict stored in a checkpoint or an ``arch.json``."""
    if not isinstance(config, dict):
        raise LightnasError(f"the stored configuration of super-network {name!r} is not a mapping")
    cls = SUPERNETS.get(name)
    return cls(cls.config_class.from_dict(config))
