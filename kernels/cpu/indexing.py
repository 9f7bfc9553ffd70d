"""Scatter kernels for the backward of indexing."""
from ._common import jit


@jit
def scatter_add(g, pos, out):
    """out[pos[i]] += g[i] for flat arrays, repeated positions accumulating (np.add.at).

    Serial: repeated positions would race under prange. ``pos`` comes from indexing an
    arange of ``out.size`` with NumPy (which bounds-checks the user's index), so it is in
    bounds by construction, and it has g's size (issue 10 audit).
    """
    for i in range(g.size):
        out[pos[i]] += g[i]
