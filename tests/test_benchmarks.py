"""benchmarks/compare_torch.py's bookkeeping, without running any model: the ratios and
verdicts against issue 9's targets, and the turn-by-turn alternation of the workers
(with fake workers that answer fixed times)."""
import pytest

from benchmarks import _report
from benchmarks.compare_torch import alternate


def speed_row(metric="forward", **values):
    row = {"metric": metric, "model": "convnext_tiny", "batch": 16, "unit": "s",
           "samples": {}, "values": values, "errors": {}, "gflop": 142.6}
    return _report.summarize(row)


def test_forward_ratio_is_against_the_faster_of_best_pytorch_layout_and_ort():
    row = speed_row(lucid_jit=0.5, lucid_eager=1.0, torch_NCHW=0.9, torch_NHWC=0.8, ort=0.6)
    assert row["torch"] == 0.8 and row["torch_layout"] == "NHWC"
    assert row["best_other_name"] == "ORT" and row["best_other"] == 0.6
    assert row["ratio"] == pytest.approx(1.2) and row["ratio_eager"] == pytest.approx(0.6)
    assert _report.status(row) == ("1.20x", ">= 1x", "MET")
    slower = speed_row(lucid_jit=0.61, lucid_eager=1.0, torch_NCHW=0.9, ort=0.6)
    assert _report.status(slower)[2] == "NOT MET"


def test_training_target_is_1_3x_pytorch():
    row = speed_row("train", lucid_jit=2.0, lucid_eager=3.0, torch_NCHW=2.5, torch_NHWC=2.7)
    assert row["ratio"] == pytest.approx(1.25)
    assert _report.status(row) == ("1.25x", ">= 1.3x", "NOT MET")
    assert _report.status(speed_row("train", lucid_jit=1.9, torch_NCHW=2.5))[2] == "MET"


def test_memory_ratio_is_lucid_over_pytorch_lower_is_better():
    row = {"metric": "memory", "model": "m", "batch": 16, "unit": "MiB", "samples": {},
           "values": {"lucid_jit": 800.0, "lucid_eager": 1500.0, "torch_NCHW": 1000.0,
                      "torch_NHWC": 1100.0}, "errors": {}}
    row = _report.summarize(row)
    assert row["ratio"] == pytest.approx(0.8) and row["ratio_eager"] == pytest.approx(1.5)
    assert _report.status(row)[2] == "MET"
    row["values"]["lucid_jit"] = 900.0
    assert _report.status(_report.summarize(row))[2] == "NOT MET"


def test_missing_jit_or_reference_is_not_a_verdict():
    no_jit = speed_row(lucid_eager=1.0, torch_NCHW=0.9)
    no_jit["errors"]["lucid_jit"] = "NotImplementedError: ..."
    assert _report.status(no_jit) == ("-", ">= 1x", "n/a (lucid jit failed)")
    assert _report.status(speed_row(lucid_jit=0.5))[2] == "n/a (no PyTorch/ORT)"
    line = _report.table_row(no_jit)
    assert line[2] == "-" and line[3] == "1000.0 ms" and line[4] == "900.0 ms (NCHW)"


class FakeWorker:
    """Answers ``seconds`` for each call; fails on timed call number ``fail_at``."""

    def __init__(self, name, seconds, log, fail_at=None):
        self.name, self.seconds, self.log, self.fail_at, self.timed = (
            name, seconds, log, fail_at, 0)

    def __call__(self, timed=False):
        self.log.append((self.name, timed))
        if timed:
            self.timed += 1
            if self.timed == self.fail_at:
                raise RuntimeError(f"{self.name} worker failed")
        return self.seconds


def test_alternate_rotates_primes_short_calls_and_drops_a_failed_worker():
    log = []
    calls = {"a": FakeWorker("a", 0.1, log), "b": FakeWorker("b", 2.0, log),
             "c": FakeWorker("c", 2.0, log, fail_at=3)}
    samples, errors = alternate(calls, repeats=3, warmup=1, pause=0.0)
    assert samples == {"a": [0.1] * 3, "b": [2.0] * 3}
    assert list(errors) == ["c"] and "c worker failed" in errors["c"]
    timed_order = [name for name, timed in log[3:] if timed]
    # round 0: a b c; round 1: b c(fails) a; round 2: a b (c is out)
    assert timed_order == ["a", "b", "c", "b", "c", "a", "a", "b"]
    # the short call "a" gets an untimed call right before each timed one, "b" never
    for i, (name, timed) in enumerate(log[3:], start=3):
        if name == "a" and timed:
            assert log[i - 1] == ("a", False)
    assert ("b", False) not in log
