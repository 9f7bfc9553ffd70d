"""``lucid.jit(model)``: compile a Module's forward; parameters are read at each call.

Like ``torch.compile(model)``, the compiled callable reads the module's current
parameters and state every time (they are arguments of the program, not constants), so
``model.load_state_dict``/training updates are seen without recompiling; train mode and
the data format are static (a change compiles a second program).
"""
from __future__ import annotations

from ._jit import jit

__all__ = ["JittedModule"]


class JittedModule:
    """A compiled facade Module: ``jm(x)`` equals ``module(x)``."""

    def __init__(self, module):
        self.module = module
        self._compiled = jit(self._pure, static_argnames=("train", "data_format"))

    def _pure(self, params, state, x, key, *, train, data_format):
        return self.module._call(params, state, x, train, key, data_format)

    def __call__(self, x, *, key=None):
        from .nn._module import _in_params_dtype
        m = self.module
        m._check_call_args(key, "NCHW", "lucid.jit(model)")
        params = m.params
        x = _in_params_dtype(x, params)
        y, new_state = self._compiled(params, m.state, x, key, train=m.training,
                                      data_format="NCHW")
        if m.training:
            m._store_state(new_state)
        return y

    def lower(self, x, *, key=None):
        """The compiled program of the forward for this input (see ``Jitted.lower``)."""
        m = self.module
        return self._compiled.lower(m.params, m.state, x, key, train=m.training,
                                    data_format="NCHW")

    def __getattr__(self, name):
        return getattr(self.module, name)

    def __repr__(self):
        return f"jit({self.module!r})"
