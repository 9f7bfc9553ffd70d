"""Building the model a command asks for, and loading weights into it, with one-line errors."""
from __future__ import annotations

import difflib

import numpy as np

from .. import tree
from . import UserError

FAMILIES = ("convnext", "inception_next")
DEFAULT_DEPTHS = {"convnext": [1, 1, 2, 1], "inception_next": [1, 1, 2, 1]}
DEFAULT_DIMS = {"convnext": [16, 32, 64, 128], "inception_next": [32, 64, 128, 256]}


class TrainableModel:
    """A model's functional pair plus what a run needs to know about it."""

    def __init__(self, facade, family: str):
        self.facade, self.family = facade, family
        self.init = facade.init
        self.apply = facade.apply

    def save_weights(self, params, state, path: str) -> None:
        """Write a flat timm-keyed state dict (params and BatchNorm buffers)."""
        from ..io import save
        save(path, flat_state_dict(params, state))


def flat_state_dict(params, state) -> dict:
    flat = {}
    for t in (params, state):
        for path, leaf in tree.flatten_with_path(t)[0]:
            flat[tree.path_str(path)] = np.asarray(leaf)
    return flat


def parse_ints(text, name: str):
    """``"1,1,3,1"`` -> ``[1, 1, 3, 1]`` (None stays None) for --depths/--dims."""
    if text is None or isinstance(text, list):
        return text
    try:
        return [int(v) for v in str(text).split(",")]
    except ValueError:
        raise UserError(f"--{name} must be comma-separated integers like 1,1,3,1, "
                        f"got {text!r}") from None


def family_of(name: str) -> str:
    return "inception_next" if name.startswith("inception_next") else "convnext"


def check_model_name(name: str, extra=()) -> None:
    """Raise a one-line error naming close matches when ``name`` is not a known model."""
    from .. import models
    known = list(extra) + models.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"unknown model {name!r}.{hint} Run `lucid list` to see all models.")


def create(name: str, **kw):
    """``lucid.models.create_model`` with unknown names turned into a one-line error."""
    from .. import models
    check_model_name(name)
    return models.create_model(name, **kw)


def build_model(cfg, num_classes: int) -> TrainableModel:
    """The model of a training run: a registered variant or a custom family with depths/dims."""
    from .. import models
    family = family_of(cfg.model)
    drop = {"drop_path": cfg.drop_path} if family == "convnext" else {"drop_path_rate": cfg.drop_path}
    if cfg.model in FAMILIES:
        depths = cfg.depths or DEFAULT_DEPTHS[family]
        dims = cfg.dims or DEFAULT_DIMS[family]
        if len(depths) != 4 or len(dims) != 4:
            raise UserError(f"--depths and --dims need 4 values each (one per stage), got "
                            f"{depths} and {dims}")
        if family == "convnext":
            facade = models.ConvNeXt(num_classes=num_classes, depths=depths, dims=dims, **drop)
        else:
            # timm's Inception mixer (band 11, branch ratio 0.125) at custom depths and widths
            facade = models.inception_next_tiny(num_classes=num_classes, depths=depths,
                                                dims=dims, **drop)
    else:
        if cfg.depths or cfg.dims:
            raise UserError("--depths/--dims apply to --model convnext or inception_next, "
                            f"not to the registered variant {cfg.model!r}")
        facade = create(cfg.model, num_classes=num_classes, **drop)
    return TrainableModel(facade, family)


def load_weights_into(facade, path: str) -> None:
    """Load a weights file (timm state dict in .safetensors/.npz/.pth) into ``facade``."""
    from .. import io
    try:
        sd = io.load(path)
    except FileNotFoundError:
        raise UserError(f"weights file {path} does not exist") from None
    except (ValueError, TypeError) as e:
        raise UserError(f"cannot read weights {path}: {e}") from None
    if any(k.startswith("params/") for k in sd):
        sd = {k.split("/", 1)[1]: v for k, v in sd.items() if k.startswith(("params/", "state/"))}
    try:
        facade.load_state_dict(sd, strict=True)
    except ValueError as e:
        first = str(e).splitlines()[0]
        raise UserError(f"weights {path} do not fit this model: {first} (check --model and "
                        "--num-classes)") from None
