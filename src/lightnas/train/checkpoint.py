"""A trained super-network's checkpoint (``supernet.pt``) read back, and the network rebuilt from it."""

from __future__ import annotations

from pathlib import Path

from lightnas.artefacts import Checkpoint
from lightnas.errors import LightnasError
from lightnas.supernets import supernet_from_config
from lightnas.supernets.base import Supernet
from lightnas.tensors import safe_load


def read_checkpoint(checkpoint: Path) -> Checkpoint:
    """The checkpoint in ``checkpoint`` (read ``weights_only``), strictly typed."""
    return Checkpoint.from_dict(safe_load(checkpoint), str(checkpoint))


def load_supernet(checkpoint: Path) -> tuple[Supernet, Checkpoint]:
    """Rebuild the trained super-network (eval mode) from its checkpoint."""
    ckpt = read_checkpoint(checkpoint)
    try:
        if ckpt.state_dict is None:
            raise KeyError("no trained weights")
        net = supernet_from_config(ckpt.supernet, ckpt.config)
        net.load_state_dict(ckpt.state_dict)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise LightnasError(f"{checkpoint} is damaged or incomplete: {str(exc).splitlines()[0]}") from None
    net.eval()
    return net, ckpt
