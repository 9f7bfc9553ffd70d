"""Differentiable array operations with NumPy names (``import lucid.numpy as lnp``)."""
from ._unary import exp

__all__ = ["exp"]
