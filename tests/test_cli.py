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


# ---- issue 13: a new user's CLI ----------------------------------------------------------
def test_piped_quiet_train_prints_plain_epoch_lines(trained):
    res = lucid_cli("train", *TINY_TRAIN, "--out", str(trained / "again"))
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stdout + res.stderr                  # no progress-bar frames
    assert res.stdout.splitlines()[0].startswith("epoch 1/1  train loss ")


def test_eval_and_predict_on_the_runs_model_file(trained, tmp_path):
    res = lucid_cli("eval", "--weights", str(trained / "model.safetensors"))
    assert res.returncode == 0, res.stderr
    log = json.loads((trained / "log.json").read_text())
    assert json.loads(res.stdout)["accuracy"] == pytest.approx(log[-1]["test_accuracy"], abs=1e-6)
    import shutil
    alone = tmp_path / "model.safetensors"   # outside its run: say what it is, as in train
    shutil.copy(trained / "model.safetensors", alone)
    assert_user_error(lucid_cli("eval", "--weights", str(alone), "--data", "synthetic"),
                      "--model")
    res = lucid_cli("eval", "--weights", str(alone), "--data", "synthetic", "--model", "convnext",
                    "--depths", "1,1,1,1", "--dims", "8,16,16,24")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["images"] == 1000
    res = lucid_cli("eval", "--weights", str(alone), "--data", "synthetic", "--model", "convnext")
    assert_user_error(res, "do not fit")


def test_deep_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    assert_user_error(lucid_cli("summary", "convnext_atto", "--input-size", "8"), "H, W >= 32")
    assert_user_error(lucid_cli("--threads", "0", "list"), "--threads", "at least 1")
    assert_user_error(lucid_cli("train", "--epochs", "two"), "--epochs", "invalid int")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    assert_user_error(lucid_cli("eval", "--weights", str(bad), "--model", "convnext_atto",
                                "--data", "synthetic"), "bad.safetensors")
    res = lucid_cli("--debug", "summary", "convnext_atto", "--input-size", "8")
    assert res.returncode != 0 and "Traceback" in res.stderr and "H, W >= 32" in res.stderr
    env_debug = subprocess.run([sys.executable, "-m", "lucid", "summary", "convnext_atto",
                                "--input-size", "8"], capture_output=True, text=True,
                               env={**os.environ, "LUCID_DEBUG": "1"}, timeout=300)
    assert "Traceback" in env_debug.stderr


def test_disk_full_is_one_line(tmp_path):
    # a sitecustomize makes every fsync fail as a full disk does (ENOSPC)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import errno, os\n"
        "def _full(fd):\n"
        "    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "os.fsync = _full\n")
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, "-m", "lucid", "train", *TINY_TRAIN, "--out",
                          str(tmp_path / "run")], capture_output=True, text=True, env=env,
                         timeout=600)
    assert_user_error(res, "no space left")


def test_every_option_has_help_with_its_default():
    from lucid.cli import _parser
    parser = _parser()
    commands = parser._subparsers._group_actions[0].choices     # noqa: SLF001 - argparse's tree
    assert set(commands) == {"train", "eval", "predict", "summary", "list", "bench"}
    for name, sub in commands.items():
        assert sub.description, name
        text = sub.format_help()
        for action in sub._actions:                              # noqa: SLF001
            if action.option_strings and action.dest not in ("help", "debug"):
                assert action.help, (name, action.dest)
                assert action.required or "default" in sub.formatter_class(name)._get_help_string(action), \
                    (name, action.dest)
        assert "--debug" in text


def test_one_epoch_curves_have_integer_ticks():
    from lucid.cli._report import curves_figure
    row = {"epoch": 1, "train_loss": 1.0, "test_loss": 0.9, "train_accuracy": 0.5,
           "test_accuracy": 0.6}
    fig = curves_figure([row])
    assert [list(ax.get_xticks()) for ax in fig.axes] == [[1], [1]]
    fig3 = curves_figure([{**row, "epoch": e} for e in (1, 2, 3)])
    assert list(fig3.axes[0].get_xticks()) == [1, 2, 3]


def test_predict_uses_the_variants_pretrained_cfg(monkeypatch, tmp_path):
    from lucid import models
    from lucid.cli import _predict
    seen = []

    def fake(path, size, crop_pct, mean, std, interpolation):
        seen.append((size, crop_pct, tuple(np.round(mean, 3)), interpolation))
        return np.zeros((3, size, size), np.float32)
    monkeypatch.setattr(_predict, "preprocess", fake)
    model = models.convnext_tiny(num_classes=1000)   # tiny: timm's crop_pct is 0.95
    monkeypatch.setattr(model, "apply", lambda p, x, state: np.zeros((len(x), 1000), np.float32))
    monkeypatch.setattr(type(model), "state_dict", lambda self: {"head.fc.weight": np.zeros((1000, 1))})
    list(_predict.predict_images(model, None, ["a.png"], None, "w", 5))
    assert seen == [(224, 0.95, (0.485, 0.456, 0.406), "bicubic")]
    assert _predict._resized_size(300, 400, 235) == (235, 313)    # torchvision's Resize(235)


def test_first_epoch_bar_says_kernels_compile_instead_of_an_eta(monkeypatch):
    import io
    from lucid.cli import _report

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    monkeypatch.setattr(_report, "_steps_in_process", 0)
    bar = _report.EpochBar(0, 5, 100, 0, quiet=False)
    first_frame = term.getvalue()
    assert "epoch 1/5 (compiling kernels)" in first_frame and "<" not in first_frame
    for _ in range(3):
        bar.update(loss=1.0, acc=0.5, ips=10.0)
    assert bar.bar.bar_format is None and "compiling" not in bar.bar.desc   # ETA from here on
    bar.close()
    assert _report.EpochBar(1, 5, 100, 0, quiet=True).bar is None      # --quiet: no bar
    monkeypatch.setattr(Terminal, "isatty", lambda self: False)
    assert _report.EpochBar(1, 5, 100, 0, quiet=False).bar is None     # piped: no bar
