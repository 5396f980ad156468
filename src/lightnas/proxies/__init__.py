"""Zero-cost proxies: training-free scores of a PyTorch network (needs torch).

The search core consumes the scores as numbers (known metrics); only this
package computes them.
"""

from lightnas.proxies.zero_cost import PROXIES, compute_proxies

__all__ = ["PROXIES", "compute_proxies"]
