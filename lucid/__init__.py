"""lucid: a JIT-compiled functional deep-learning array library for CPUs.

Models are pure functions over explicit parameter pytrees; every operation is a
primitive with a Numba forward kernel and Numba backward kernel(s); ``grad``,
``value_and_grad`` and ``vjp`` compose them.
"""
from . import io, numpy, random, tree
from . import nn, models, optim, data, metrics
from ._autodiff import Tracer, grad, is_tracer, stop_gradient, value_and_grad, vjp
from ._backend import backend, set_backend, set_num_threads
from ._summary import summary

tree_map = tree.map
tree_leaves = tree.leaves

__version__ = "0.1.0"

__all__ = [
    "numpy", "random", "tree", "tree_map", "tree_leaves", "io", "nn", "models", "optim", "data",
    "metrics", "summary",
    "grad", "value_and_grad", "vjp", "stop_gradient", "is_tracer", "Tracer",
    "backend", "set_backend", "set_num_threads",
]
