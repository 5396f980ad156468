"""lightnas: hardware-aware neural architecture search.

Importing ``lightnas`` does not import torch; the search core (``space``,
``objectives``, ``store``, ``search``, ``predictors``, ``bench``) is torch-free.
"""

__version__ = "0.1.0"
