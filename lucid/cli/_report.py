"""Progress bars, per-epoch logs (JSON and CSV) and the loss/accuracy curves picture."""
from __future__ import annotations

import csv
import io
import json
import os

from ..io import atomic_write

__all__ = ["EpochBar", "write_logs", "plot_curves", "curves_figure"]


_COMPILE_STEPS = 2  # the first steps of a process compile (or load cached) kernels
_steps_in_process = 0
_PLAIN_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


class EpochBar:
    """A tqdm bar over one epoch's steps showing running loss, accuracy and images/s.

    Shown only on a terminal (piped output gets the per-epoch lines alone) and not with
    ``--quiet``. While the process's first steps compile kernels the bar says so instead
    of extrapolating a remaining time from them.
    """

    def __init__(self, epoch: int, epochs: int, total: int, done: int, quiet: bool):
        import sys
        self.bar, self.desc = None, f"epoch {epoch + 1}/{epochs}"
        if quiet or not sys.stderr.isatty():
            return
        from tqdm import tqdm
        compiling = _steps_in_process < _COMPILE_STEPS
        self.bar = tqdm(total=total, initial=done, unit="step", leave=False, dynamic_ncols=True,
                        desc=self.desc + (" (compiling kernels)" if compiling else ""),
                        bar_format=_PLAIN_FORMAT if compiling else None)

    def update(self, *, loss: float, acc: float, ips: float) -> None:
        global _steps_in_process
        _steps_in_process += 1
        if self.bar is None:
            return
        if _steps_in_process == _COMPILE_STEPS:  # compiled: from now on the rate means something
            self.bar.set_description(self.desc, refresh=False)
            self.bar.bar_format = None  # tqdm's rate is a moving average: the compile fades out
        self.bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}", img_s=f"{ips:.0f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def write_logs(out: str, history: list[dict]) -> None:
    """Write ``log.json``, ``log.csv`` and ``curves.png`` into ``out`` (each atomically)."""
    with atomic_write(os.path.join(out, "log.json"), "w") as f:
        json.dump(history, f, indent=1)
    if history:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
        with atomic_write(os.path.join(out, "log.csv"), "w") as f:
            f.write(buf.getvalue())
        plot_curves(history, os.path.join(out, "curves.png"))


def plot_curves(history: list[dict], path: str) -> None:
    """Loss (left) and accuracy (right) per epoch, train and held-out, as a PNG."""
    import matplotlib.pyplot as plt
    fig = curves_figure(history)
    with atomic_write(path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def curves_figure(history: list[dict]):
    """The matplotlib figure of :func:`plot_curves`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax_loss.plot(epochs, [r["test_loss"] for r in history], "s-", label="held-out")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, [r["train_accuracy"] for r in history], "o-", label="train")
    ax_acc.plot(epochs, [r["test_accuracy"] for r in history], "s-", label="held-out")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        if len(epochs) <= 12:  # one tick per epoch: 1, 2, ... (never 0.96, 0.98, ...)
            ax.set_xticks(epochs)
            ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig
