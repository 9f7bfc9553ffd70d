"""The `lucid` command through a subprocess: its commands, outputs and one-line errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

TINY_TRAIN = ["--epochs", "1", "--train-size", "96", "--test-size", "32", "--batch-size", "32",
              "--depths", "1,1,1,1", "--dims", "8,16,16,24", "--quiet"]


def lucid_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "lucid", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def assert_user_error(res, *needles):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = [l for l in res.stderr.strip().splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith("lucid: error: "), res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    res = lucid_cli("train", *TINY_TRAIN, "--out", str(out))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 3 and 0.0 <= summary["test_accuracy"] <= 1.0
    return out


def test_train_writes_run_files(trained):
    for name in ("last.safetensors", "model.safetensors", "log.json", "log.csv", "curves.png"):
        assert (trained / name).stat().st_size > 0
    log = json.loads((trained / "log.json").read_text())
    assert log[0]["epoch"] == 1 and "test_accuracy" in log[0]


def test_eval_checkpoint(trained):
    res = lucid_cli("eval", "--weights", str(trained / "last.safetensors"))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["images"] == 32
    log = json.loads((trained / "log.json").read_text())
    assert out["accuracy"] == pytest.approx(log[-1]["test_accuracy"], abs=1e-6)


def test_predict_with_checkpoint(trained, tmp_path):
    from PIL import Image
    img = tmp_path / "square.png"
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(img)
    res = lucid_cli("predict", str(img), "--weights", str(trained / "last.safetensors"))
    assert res.returncode == 0, res.stderr
    line = res.stdout.strip()
    assert line.startswith(str(img)) and line.count(",") == 4      # top-5
    probs = [float(part.split()[-1]) for part in line.split(": ", 1)[1].split(", ")]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6


def test_resume_continues(trained, tmp_path):
    import shutil
    out = tmp_path / "again"
    shutil.copytree(trained, out)
    res = lucid_cli("train", "--resume", "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["steps"] == 3   # already finished


def test_list_and_summary():
    res = lucid_cli("list", "inception_next_*")
    assert res.returncode == 0
    assert res.stdout.split() == ["inception_next_atto", "inception_next_base",
                                  "inception_next_small", "inception_next_tiny"]
    res = lucid_cli("summary", "convnext_atto")
    assert res.returncode == 0 and "3,695,520" in res.stdout
    res = lucid_cli("summary", "convnext_atto", "--mermaid")
    assert res.returncode == 0 and res.stdout.lstrip().startswith("flowchart")


def test_unknown_model_is_one_line():
    assert_user_error(lucid_cli("summary", "convnext_tinny"), "unknown model", "convnext_tiny")
    assert_user_error(lucid_cli("train", "--model", "resnet50", *TINY_TRAIN), "unknown model")


def test_batch_larger_than_dataset():
    args = [a for a in TINY_TRAIN if a != "--quiet"]
    args[args.index("--batch-size") + 1] = "500"
    assert_user_error(lucid_cli("train", *args), "batch", "larger")


def test_missing_and_mismatched_weights(tmp_path, trained):
    assert_user_error(lucid_cli("eval", "--weights", str(tmp_path / "nope.safetensors")),
                      "does not exist")
    res = lucid_cli("predict", "x.png", "--model", "convnext_atto",
                    "--weights", str(trained / "model.safetensors"))
    assert_user_error(res, "do not fit")


def test_unreadable_image(tmp_path, trained):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    res = lucid_cli("predict", str(bad), "--weights", str(trained / "last.safetensors"))
    assert_user_error(res, "cannot read image", "bad.png")


def test_empty_dataset_folder(tmp_path):
    (tmp_path / "data").mkdir()
    res = lucid_cli("train", "--data", str(tmp_path / "data"), *TINY_TRAIN)
    assert_user_error(res, "--data")


def test_nan_loss_is_reported(tmp_path):
    res = lucid_cli("train", *TINY_TRAIN, "--optimizer", "sgd", "--lr", "1e12", "--schedule",
                    "constant", "--out", str(tmp_path))
    assert_user_error(res, "diverged", "--lr")


def test_ctrl_c_keeps_the_last_checkpoint(tmp_path):
    import signal
    import time
    from lucid.checkpoint import load_checkpoint
    args = [a for a in TINY_TRAIN if a not in ("--epochs", "1")]
    cmd = [sys.executable, "-m", "lucid", "train", *args, "--epochs", "50",
           "--checkpoint-every", "1", "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "last.safetensors"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), proc.communicate()
    time.sleep(1.0)                       # let it be busy writing further checkpoints
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    _, _, _, meta = load_checkpoint(str(ckpt))   # intact and readable
    assert meta["step"] >= 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
