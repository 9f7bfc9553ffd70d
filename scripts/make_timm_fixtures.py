"""Generate the timm parity fixtures under tests/fixtures/.

Run (from the repository root) with the reference environment built by
``bash /work/shared/reference-env.sh /tmp/lucid-ref`` (PyTorch 2.13 CPU + timm 1.0.31 + safetensors):

    /tmp/lucid-ref/bin/python scripts/make_timm_fixtures.py [--out tests/fixtures]

Each case writes one ``<name>.npz`` (np.savez_compressed) holding:

* ``config_json``  0-d str array, JSON: family, constructor (timm kwargs; for InceptionNeXt the
  ``token_mixers`` entry is a dict describing the ``functools.partial(InceptionDWConv2d, ...)``),
  input_shape, input_seed, mode, plus param_seed / cotangent_seed (provenance only);
* ``param/<key>``, ``buffer/<key>`` (InceptionNeXt BatchNorm stats, state before the step),
  ``cotangent``, ``logits``, ``input_grad``, ``grad/<key>`` and, for mode "train", ``new_buffer/<key>``.

The input is not stored: ``np.random.default_rng(input_seed).standard_normal(input_shape).astype(np.float32)``.
The backward is ``(logits * cotangent).sum().backward()``. Every parameter / buffer is overwritten with
seeded random values (see ``randomize``); they are rounded to bfloat16-representable float32 values so
that the compressed fixtures stay small (the model is run with exactly those stored values). Outputs are
plain float32 PyTorch results, not rounded. It also writes three state-dict checkpoints for loader tests.
"""
import argparse
import json
import os
from functools import partial

import numpy as np
import torch
from torch import nn
import timm
from timm.models.convnext import ConvNeXt
from timm.models.inception_next import InceptionDWConv2d, MetaNeXt

torch.set_num_threads(2)

# Small configs. Channel widths are deliberately tiny: the float32 input gradients alone (2x 224x224,
# 2x 160x160, 2x 122x138, ...) take ~2.3 MB, and each fixture repeats params + grads, so the widths
# the brief suggested ((16,32,48,64) / (32,64,96,128)) would have made ~20 MB in total.
CONVNEXT = dict(depths=[1, 1, 2, 1], dims=[8, 12, 16, 24], num_classes=10, conv_mlp=False,
                drop_rate=0.0, drop_path_rate=0.0)
CONVNEXT_CONVMLP = dict(depths=[1, 1, 1, 1], dims=[8, 12, 16, 24], num_classes=7, conv_mlp=True,
                        drop_rate=0.0, drop_path_rate=0.0)
INCEPTION = dict(depths=[1, 1, 2, 1], dims=[8, 12, 16, 24], num_classes=10, drop_rate=0.0,
                 drop_path_rate=0.0,
                 token_mixers=dict(type="InceptionDWConv2d", square_kernel_size=3,
                                   band_kernel_size=11, branch_ratio=0.125))
INCEPTION_ATTO_MIXER = dict(depths=[1, 1, 1, 1], dims=[8, 12, 16, 24], num_classes=5, drop_rate=0.0,
                            drop_path_rate=0.0,
                            token_mixers=dict(type="InceptionDWConv2d", square_kernel_size=3,
                                              band_kernel_size=9, branch_ratio=0.25))

# name, family, constructor, input_shape, input_seed, mode, param_seed
CASES = [
    ("convnext_224", "convnext", CONVNEXT, [1, 3, 224, 224], 101, "eval", 1),
    ("convnext_160", "convnext", CONVNEXT, [1, 3, 160, 160], 102, "eval", 1),
    ("convnext_odd", "convnext", CONVNEXT, [1, 3, 122, 138], 103, "eval", 1),
    ("convnext_convmlp", "convnext", CONVNEXT_CONVMLP, [2, 3, 64, 64], 104, "eval", 2),
    ("inception_next_224", "inception_next", INCEPTION, [1, 3, 224, 224], 105, "eval", 3),
    ("inception_next_160", "inception_next", INCEPTION, [1, 3, 160, 160], 106, "eval", 3),
    ("inception_next_odd", "inception_next", INCEPTION, [1, 3, 122, 138], 107, "eval", 3),
    ("inception_next_atto_mixer", "inception_next", INCEPTION_ATTO_MIXER, [2, 3, 64, 64], 108, "eval", 4),
    ("inception_next_train", "inception_next", INCEPTION_ATTO_MIXER, [4, 3, 64, 64], 109, "train", 4),
]
CHECKPOINTS = {  # case whose model (same param seed) is saved -> file names
    "convnext_convmlp": ["convnext_convmlp_state.pth", "convnext_convmlp_state.safetensors"],
    "inception_next_224": ["inception_next_224_state.pth"],
}


def build(family, constructor):
    kw = dict(constructor)
    if family == "convnext":
        return ConvNeXt(**kw)
    tm = dict(kw.pop("token_mixers"))
    assert tm.pop("type") == "InceptionDWConv2d"
    return MetaNeXt(token_mixers=partial(InceptionDWConv2d, **tm), **kw)


def bf16_round(a):
    """Round float32 values to the nearest bfloat16-representable value (kept as float32)."""
    return torch.from_numpy(np.asarray(a, np.float32)).to(torch.bfloat16).to(torch.float32)


@torch.no_grad()
def randomize(model, seed):
    """Overwrite every parameter and BatchNorm buffer with seeded, non-default random values."""
    rng = np.random.default_rng(seed)
    done = set()

    def put(name, tensor, values):
        tensor.copy_(bf16_round(values).reshape(tensor.shape))
        done.add(name)

    for mname, m in model.named_modules():
        pre = mname + "." if mname else ""
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = int(np.prod(m.weight.shape[1:]))  # per-group fan-in for depthwise convs
            put(pre + "weight", m.weight, rng.standard_normal(m.weight.shape) / np.sqrt(fan_in))
            put(pre + "bias", m.bias, 0.1 * rng.standard_normal(m.bias.shape))
        elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):  # timm LayerNorm/LayerNorm2d subclass nn.LayerNorm
            put(pre + "weight", m.weight, 1.0 + 0.2 * rng.standard_normal(m.weight.shape))
            put(pre + "bias", m.bias, 0.1 * rng.standard_normal(m.bias.shape))
            if isinstance(m, nn.BatchNorm2d):
                assert m.momentum == 0.1 and m.eps == 1e-5 and m.track_running_stats
                put(pre + "running_mean", m.running_mean, 0.1 * rng.standard_normal(m.running_mean.shape))
                put(pre + "running_var", m.running_var, rng.uniform(0.5, 1.5, m.running_var.shape))
                m.num_batches_tracked.fill_(int(rng.integers(1, 1000)))
                done.add(pre + "num_batches_tracked")
        elif hasattr(m, "gamma") and isinstance(m.gamma, nn.Parameter):  # layer scale
            put(pre + "gamma", m.gamma, rng.uniform(0.3, 1.0, m.gamma.shape))
    missing = set(model.state_dict()) - done
    assert not missing, f"not randomized: {sorted(missing)}"


def param_seed_model(family, constructor, param_seed):
    model = build(family, constructor)
    randomize(model, param_seed)
    return model


def run_case(name, family, constructor, input_shape, input_seed, mode, param_seed, out_dir):
    model = param_seed_model(family, constructor, param_seed)
    buffers_before = {k: b.detach().clone() for k, b in model.named_buffers()}
    model.train(mode == "train")

    x = torch.from_numpy(np.random.default_rng(input_seed).standard_normal(input_shape).astype(np.float32))
    x.requires_grad_(True)
    logits = model(x)
    cot_seed = 1000 + input_seed
    cot = np.random.default_rng(cot_seed).standard_normal(tuple(logits.shape)).astype(np.float32)
    (logits * torch.from_numpy(cot)).sum().backward()

    config = dict(family=family, constructor=constructor, input_shape=list(input_shape),
                  input_seed=input_seed, mode=mode, param_seed=param_seed, cotangent_seed=cot_seed)
    arrays = {"config_json": np.array(json.dumps(config, sort_keys=True)),
              "cotangent": cot,
              "logits": logits.detach().numpy().astype(np.float32),
              "input_grad": x.grad.numpy().astype(np.float32)}
    for k, p in model.named_parameters():
        assert p.dtype == torch.float32 and p.grad is not None, k
        arrays["param/" + k] = p.detach().numpy().copy()
        arrays["grad/" + k] = p.grad.numpy().copy()
    for k, b in buffers_before.items():
        arrays["buffer/" + k] = b.numpy()
    if mode == "train":
        for k, b in model.named_buffers():
            arrays["new_buffer/" + k] = b.detach().numpy().copy()
        # sanity: PyTorch semantics, momentum 0.1, unbiased batch variance for running_var
        k0 = "stem.1"
        with torch.no_grad():
            y = model.stem[0](x)
            m_exp = 0.9 * buffers_before[k0 + ".running_mean"] + 0.1 * y.mean((0, 2, 3))
            v_exp = 0.9 * buffers_before[k0 + ".running_var"] + 0.1 * y.var((0, 2, 3), unbiased=True)
        assert torch.allclose(model.stem[1].running_mean, m_exp, atol=1e-5)
        assert torch.allclose(model.stem[1].running_var, v_exp, atol=1e-5)
        assert int(model.stem[1].num_batches_tracked) == int(buffers_before[k0 + ".num_batches_tracked"]) + 1
    else:
        for k, b in model.named_buffers():  # eval must not touch running stats
            assert torch.equal(b, buffers_before[k]), k

    path = os.path.join(out_dir, name + ".npz")
    np.savez_compressed(path, **arrays)
    grads = [np.abs(v).max() for k, v in arrays.items() if k.startswith("grad/")]
    print(f"{name:28s} logits{tuple(logits.shape)} max|logits|={np.abs(arrays['logits']).max():.4g} "
          f"max|input_grad|={np.abs(arrays['input_grad']).max():.4g} "
          f"max|param grad|={max(grads):.4g} min(max|param grad|)={min(grads):.3g} "
          f"({os.path.getsize(path) / 1024:.0f} KiB)")
    print("    config_json:", arrays["config_json"].item())
    return model


def save_checkpoints(name, model, files, out_dir):
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    for fname in files:
        path = os.path.join(out_dir, fname)
        if fname.endswith(".pth"):
            torch.save(sd, path)
            back = torch.load(path, weights_only=True)
        else:
            from safetensors.torch import load_file, save_file
            save_file(sd, path)
            back = load_file(path)
        assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
        print(f"{fname:40s} {len(sd)} entries ({os.path.getsize(path) / 1024:.0f} KiB), from case {name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    out_dir = os.path.normpath(ap.parse_args().out)
    os.makedirs(out_dir, exist_ok=True)
    print(f"torch {torch.__version__}, timm {timm.__version__}, numpy {np.__version__}")
    for case in CASES:
        run_case(*case, out_dir)
        if case[0] in CHECKPOINTS:
            fresh = param_seed_model(case[1], case[2], case[6])  # untouched state (no train step)
            save_checkpoints(case[0], fresh, CHECKPOINTS[case[0]], out_dir)
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir)
                if f.endswith((".npz", ".pth", ".safetensors")))
    print(f"total fixture size: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
