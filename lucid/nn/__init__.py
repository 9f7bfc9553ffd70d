"""Neural-network layers: ``lucid.nn.functional`` and (soon) the Module facade."""
from . import functional

__all__ = ["functional"]
