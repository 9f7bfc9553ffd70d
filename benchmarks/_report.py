"""``compare_torch.py``'s rows: ratios against issue 9's targets, the machine, the table.

A row holds ``values``: one summary (seconds or MiB) per implementation that ran
(``lucid_jit``, ``lucid_eager``, ``torch_NCHW``, ``torch_NHWC``, ``ort``) and
``errors``: why an implementation did not. :func:`summarize` adds PyTorch's best
layout, the best of the other libraries and lucid's ratios against it;
:func:`format_report` prints the Markdown table and its notes.
"""
from __future__ import annotations

import os
import platform
import subprocess

from benchmarks._workers import TORCH_IMPLS

SPEED = ("forward", "latency", "train")
# metric -> (direction, threshold, unit) from issue 9's "Targets". Speed rows: ratio =
# best other library's time / lucid jit's (throughput ratio, higher is better); memory:
# lucid jit / PyTorch (lower is better); compile and trace: lucid seconds.
TARGETS = {"forward": (">=", 1.0, "x"), "latency": (">=", 1.0, "x"), "train": (">=", 1.3, "x"),
           "memory": ("<=", 0.8, "x"), "compile": ("<=", 30.0, " s"), "trace": ("<=", 1.0, " s")}
_LABELS = {"forward": "forward, batch {b}", "latency": "forward, batch 1",
           "train": "train step, batch {b}", "memory": "peak RSS train step, batch {b}",
           "compile": "1st-ever compile, jitted train step", "trace": "trace a cached program",
           "coldstart": "fresh process to 1st logits (eager)"}


def summarize(row: dict) -> dict:
    """Add ``torch`` (best layout), ``ort``, ``best_other`` and lucid's ratios to ``row``."""
    values, metric = row["values"], row["metric"]
    torch = {k: values[k] for k in TORCH_IMPLS if values.get(k) is not None}
    others = {}
    if torch:
        best_layout = min(torch, key=torch.get)
        row.update(torch=torch[best_layout], torch_layout=best_layout.split("_", 1)[1])
        others["PyTorch"] = row["torch"]
    if values.get("ort") is not None:
        row["ort"] = others["ORT"] = values["ort"]
    if others:
        row["best_other_name"] = min(others, key=others.get)
        row["best_other"] = others[row["best_other_name"]]
    for key, impl in (("ratio", "lucid_jit"), ("ratio_eager", "lucid_eager")):
        mine = values.get(impl)
        if mine and others:
            best = row["best_other"]
            row[key] = best / mine if metric in SPEED else mine / best
    return row


def status(row: dict) -> tuple:
    """(ratio shown, target shown, MET / NOT MET / why not measured)."""
    target = TARGETS.get(row["metric"])
    if target is None:
        return _ratio(row, "ratio_eager"), "-", "-"
    direction, threshold, unit = target
    shown = f"{direction} {threshold:g}{unit}"
    ratio = row.get("ratio")
    if ratio is None:
        why = ("lucid jit failed" if "lucid_jit" in row.get("errors", {})
               or "lucid_jit" not in row["values"] else "no PyTorch/ORT")
        return "-", shown, f"n/a ({why})"
    met = ratio >= threshold if direction == ">=" else ratio <= threshold
    return _ratio(row, "ratio"), shown, "MET" if met else "NOT MET"


def _ratio(row, key):
    v = row.get(key)
    if v is None:
        return "-"
    return f"{v:.2f} s" if row["metric"] in ("compile", "trace") else f"{v:.2f}x"


def _fmt(row, v):
    if v is None:
        return "-"
    if row["unit"] == "MiB":
        return f"{v:.0f} MiB"
    if row["metric"] in ("compile", "trace", "coldstart"):
        return f"{v:.2f} s"
    return f"{v * 1e3:.1f} ms"


def _pct(v):
    return "?" if v is None else f"{100 * v:.0f}%"


def _gflops(row, v):
    return f"{row['gflop'] / v:.0f}" if row["metric"] in SPEED and v else "-"


def table_row(row: dict) -> list:
    values = row["values"]
    torch = _fmt(row, row.get("torch"))
    if row.get("torch_layout"):
        torch += f" ({row['torch_layout']})"
    ratio, target, met = status(row)
    return [row["model"], _LABELS[row["metric"]].format(b=row["batch"]),
            _fmt(row, values.get("lucid_jit")), _fmt(row, values.get("lucid_eager")), torch,
            _fmt(row, row.get("ort")), _gflops(row, values.get("lucid_jit")),
            _gflops(row, row.get("best_other")), ratio, _ratio(row, "ratio_eager"),
            target, met, _pct(row.get("other_load"))]


HEAD = ["model", "metric", "lucid jit", "lucid eager", "PyTorch (layout)", "ORT",
        "jit GFLOP/s", "best other GFLOP/s", "ratio (jit)", "ratio (eager)", "target", "status",
        "others"]


def format_report(report: dict) -> str:
    """The Markdown table, then what it means and the machine it ran on."""
    rows, m, s = report["rows"], report["machine"], report["settings"]
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(table_row(r)) + " |" for r in rows]
    lines += [
        "", "ratio: speed rows = time of the best of PyTorch (best layout) and ONNX Runtime / "
        "lucid's time (higher is better; training: PyTorch only); memory = lucid / PyTorch "
        "(lower is better); compile and trace: lucid seconds. 'ratio (jit)' is what the "
        "target is checked on. timm parity through jit is checked by the tests, not here.",
        "others: share of the machine's CPU time used by other processes meanwhile (whole "
        f"run: {_pct(m.get('other_load'))}); well above 0% = figures from a busy machine."]
    for row in rows:
        if row["metric"] == "memory":
            lines.append(f"peak RSS {row['model']}: " + "; ".join(
                f"{impl} {v['peak_mib']:.0f} MiB (before the first step "
                f"{v['rss_before_step_mib']:.0f} MiB)" for impl, v in row["samples"].items()))
        if row["metric"] == "trace" and row["samples"]:
            r0 = row["samples"][0]
            lines.append(
                f"compile: fresh process, empty Numba cache: setup {r0['setup_s']:.1f} s, first "
                f"jitted call {r0['first_call_s']:.1f} s, second {r0['second_call_s']:.2f} s "
                f"(process wall {r0['wall_s']:.1f} s); cache warm: first call - second = "
                f"{_fmt(row, row['values']['lucid_jit'])}, .lower() of a fresh jit "
                f"{_fmt(row, row.get('lower_s'))}")
        for impl, err in row.get("errors", {}).items():
            last = [ln for ln in str(err).splitlines() if ln.strip()][-1:] or [""]
            lines.append(f"{row['metric']} {row['model']}: {impl} did not run: {last[0][:300]}")
    lines += [_machine_line(m), f"settings: {s['stat']} of {s['repeats']} timed calls "
              f"(batch-1 forward: {max(s['repeats'], 10)}) after {s['warmup']} warm-up, "
              f"{s['pause']} s pause before each turn, float32, 224x224"]
    return "\n".join(lines)


def _machine_line(m: dict) -> str:
    ref = m.get("reference", {})
    refs = ", ".join(f"{k} {v}" for k, v in ref.items() if v) or "no reference libraries"
    return (f"machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['threads']} threads "
            f"each; lucid: Python {m['python']}, NumPy {m['numpy']}, Numba {m['numba']} "
            f"(threading layer {m['numba_threading_layer']}); reference ({m['ref_python']}): "
            f"{refs}; ORT: CPU provider, ORT_ENABLE_ALL, {m['threads']} intra-op threads, "
            "1 inter-op, sequential")


def machine_info(setup) -> dict:
    import numba
    import numpy
    args = setup.args
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "threads": args.threads,
            "python": platform.python_version(), "numpy": numpy.__version__,
            "numba": numba.__version__, "numba_threading_layer": _numba_layer(args.numba_layer),
            "ref_python": args.ref_python, "reference": setup.ref,
            "torch_ok": setup.torch_ok, "ort_ok": setup.ort_ok}


def cpu_name() -> str:
    """``lscpu``'s model name (else /proc/cpuinfo's, else platform's)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _numba_layer(requested: str) -> str:
    """The layer lucid's workers run on: the requested one, or Numba's default choice."""
    if requested != "default":
        return requested
    import importlib
    for layer in ("tbb", "omp"):  # Numba's default order of preference, then workqueue
        try:
            importlib.import_module(f"numba.np.ufunc.{layer}pool")
            return f"{layer} (Numba's default)"
        except ImportError:
            continue
    return "workqueue (Numba's default)"
