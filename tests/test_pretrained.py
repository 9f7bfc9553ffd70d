"""timm conventions: pretrained_cfg, fine-tuning from a checkpoint, pretrained=True from the
local Hugging Face cache (a cache built here; the network is never used)."""
import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import lucid
import lucid.models as models

SMALL = dict(depths=(1, 1, 1, 1), dims=(8, 16, 16, 24))
X = lucid.random.normal(lucid.random.key(2), (2, 3, 32, 32))


def test_pretrained_cfg_is_timms_default_tag():
    tiny = models.convnext_tiny()
    assert tiny.pretrained_cfg["hf_hub_id"] == "timm/convnext_tiny.in12k_ft_in1k"
    assert tiny.pretrained_cfg["crop_pct"] == 0.95 and tiny.default_cfg is tiny.pretrained_cfg
    atto = models.create_model("convnext_atto").pretrained_cfg
    assert (atto["hf_hub_id"], atto["crop_pct"], atto["input_size"]) == (
        "timm/convnext_atto.d2_in1k", 0.875, (3, 224, 224))
    inc = models.inception_next_base().pretrained_cfg
    assert (inc["hf_hub_id"], inc["crop_pct"], inc["classifier"]) == (
        "timm/inception_next_base.sail_in1k", 0.95, "head.fc2")
    assert inc["mean"] == (0.485, 0.456, 0.406) and inc["interpolation"] == "bicubic"


@pytest.mark.parametrize("name,head", [("convnext_atto", "head.fc"),
                                       ("inception_next_atto", "head.fc2")])
def test_fine_tuning_loads_all_but_the_classifier(tmp_path, caplog, name, head):
    source = models.create_model(name, num_classes=7, **SMALL)
    path = tmp_path / "ckpt.safetensors"
    lucid.io.save(str(path), source.state_dict())
    with caplog.at_level(logging.INFO, logger="lucid.models"):
        model = models.create_model(name, weights=str(path), num_classes=3, **SMALL)
    assert f"classifier {head}" in caplog.text and "7 classes" in caplog.text
    got, want = model.state_dict(), source.state_dict()
    assert got[f"{head}.weight"].shape[0] == 3
    for k, v in want.items():
        if not k.startswith(head):
            np.testing.assert_array_equal(got[k], v, err_msg=k)
    # same number of classes: everything loads, the logits are the source's
    same = models.create_model(name, weights=str(path), num_classes=7, **SMALL)
    np.testing.assert_array_equal(same(X), source(X))
    with pytest.raises(ValueError, match="mis-shaped"):  # another architecture still fails
        models.create_model(name, weights=str(path), num_classes=3,
                            depths=(1, 1, 1, 1), dims=(8, 16, 16, 32))


_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import lucid, lucid.models as models
    small = dict(depths=(1, 1, 1, 1), dims=(8, 16, 16, 24))
    model = models.create_model("convnext_atto", pretrained=True, **small)
    want = lucid.io.load(sys.argv[1])
    same = all(np.array_equal(v, want[k]) for k, v in model.state_dict().items())
    try:
        models.create_model("inception_next_atto", pretrained=True)
        err = None
    except FileNotFoundError as e:
        err = str(e)
    print(json.dumps({"same": same, "error": err}))
""")


def test_pretrained_true_reads_the_hugging_face_cache(tmp_path):
    pytest.importorskip("huggingface_hub")
    source = models.create_model("convnext_atto", **SMALL)
    snapshot = tmp_path / "hub" / "models--timm--convnext_atto.d2_in1k"
    (snapshot / "snapshots" / "0123abcd").mkdir(parents=True)
    (snapshot / "refs").mkdir()
    (snapshot / "refs" / "main").write_text("0123abcd")
    ckpt = snapshot / "snapshots" / "0123abcd" / "model.safetensors"
    lucid.io.save(str(ckpt), source.state_dict())
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1",
           "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, "-c", _SCRIPT, str(ckpt)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["same"] is True
    assert "model.safetensors of timm/inception_next_atto.sail_in1k" in out["error"]
    assert "HF_HUB_OFFLINE=1" in out["error"] and str(tmp_path / "hub") in out["error"]


def test_weights_and_pretrained_together_is_an_error(tmp_path):
    with pytest.raises(TypeError, match="not both"):
        models.convnext_atto(weights="x.safetensors", pretrained=True)
