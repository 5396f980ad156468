"""Cost on the target: parameters, MACs, bytes, memory, measured latency."""

from lightnas.hardware.cost import count_cost
from lightnas.hardware.latency import measure_latency

__all__ = ["count_cost", "measure_latency"]
