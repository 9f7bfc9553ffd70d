"""lucid: a JIT-compiled functional deep-learning array library for CPUs.

Models are pure functions over explicit parameter pytrees; every operation is a
primitive with a Numba forward kernel and Numba backward kernel(s); ``grad``,
``value_and_grad`` and ``vjp`` compose them.
"""
from . import numpy, random, tree
from ._autodiff import Tracer, grad, is_tracer, stop_gradient, value_and_grad, vjp
from ._backend import backend, set_backend, set_num_threads

tree_map = tree.map
tree_leaves = tree.leaves

__version__ = "0.1.0"

__all__ = [
    "numpy", "random", "tree", "tree_map", "tree_leaves",
    "grad", "value_and_grad", "vjp", "stop_gradient", "is_tracer", "Tracer",
    "backend", "set_backend", "set_num_threads",
]
