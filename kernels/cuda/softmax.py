"""Softmax, log-softmax and fused cross-entropy over rows of x (R, K) (the CUDA twin of
``kernels/cpu/softmax.py``). One block per row: the row max and the float64 row sums
come from fixed shared-memory trees, so results are deterministic.

Labels are not range-checked on the host here (that would cost a device->host copy per
step): a label outside [0, K) is never used as an index; its row's loss is NaN."""
import math

from numba import cuda, float64

from ._common import RB, block_max, block_sum, launch, launch_reduce, safe_exp


@cuda.jit(device=True, inline=True)
def _row_logsumexp(x, r, buf):
    """(max, log-sum-exp) of row r, every thread of the block taking part."""
    k = x.shape[1]
    t = cuda.threadIdx.x
    m = -math.inf
    for i in range(t, k, RB):
        v = x[r, i]
        if m == m and (v > m or v != v):
            m = v
    m = block_max(m, buf)
    s = 0.0
    for i in range(t, k, RB):
        s += safe_exp(x[r, i] - m)
    return m, m + math.log(block_sum(s, buf))


@cuda.jit
def _softmax_fwd(x, out, log):
    buf = cuda.shared.array(RB, float64)
    rows, k = x.shape
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        m, lse = _row_logsumexp(x, r, buf)
        for i in range(cuda.threadIdx.x, k, RB):
            if log:
                out[r, i] = x[r, i] - lse
            else:
                out[r, i] = safe_exp(x[r, i] - lse)


@cuda.jit
def _softmax_bwd(g, y, out, log):
    """softmax: out = y * (g - sum(g * y)); log-softmax: out = g - exp(y) * sum(g)."""
    buf = cuda.shared.array(RB, float64)
    rows, k = g.shape
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        s = 0.0
        for i in range(cuda.threadIdx.x, k, RB):
            s += g[r, i] if log else g[r, i] * y[r, i]
        s = block_sum(s, buf)
        for i in range(cuda.threadIdx.x, k, RB):
            if log:
                out[r, i] = g[r, i] - safe_exp(y[r, i]) * s
            else:
                out[r, i] = y[r, i] * (g[r, i] - s)


def softmax_fwd(x, out):
    launch_reduce(_softmax_fwd, x.shape[0], x, out, False)


def softmax_bwd(g, y, out):
    """out = y * (g - sum(g * y)) per row."""
    launch_reduce(_softmax_bwd, g.shape[0], g, y, out, False)


def log_softmax_fwd(x, out):
    launch_reduce(_softmax_fwd, x.shape[0], x, out, True)


def log_softmax_bwd(g, y, out):
    """out = g - exp(y) * sum(g) per row, y = log_softmax(x)."""
    launch_reduce(_softmax_bwd, g.shape[0], g, y, out, True)


@cuda.jit
def _cross_entropy_fwd(x, labels, smoothing, loss, lse):
    """loss = lse - (1 - s) x[label] - s/K sum(x)."""
    buf = cuda.shared.array(RB, float64)
    rows, k = x.shape
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        m, lr = _row_logsumexp(x, r, buf)
        sx = 0.0
        for i in range(cuda.threadIdx.x, k, RB):
            sx += x[r, i]
        sx = block_sum(sx, buf)
        if cuda.threadIdx.x == 0:
            lse[r] = lr
            label = labels[r]
            if 0 <= label < k:
                loss[r] = lr - (1.0 - smoothing) * x[r, label] - smoothing / k * sx
            else:   # never read outside the row: an invalid label makes the loss NaN
                loss[r] = math.nan


@cuda.jit
def _cross_entropy_soft_fwd(x, t, smoothing, loss, lse):
    """loss = lse * sum(t') - sum(t' x), t' = (1 - s) t + s/K."""
    buf = cuda.shared.array(RB, float64)
    rows, k = x.shape
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        m, lr = _row_logsumexp(x, r, buf)
        sx = 0.0
        st = 0.0
        stx = 0.0
        for i in range(cuda.threadIdx.x, k, RB):
            sx += x[r, i]
            st += t[r, i]
            stx += t[r, i] * x[r, i]
        sx = block_sum(sx, buf)
        st = block_sum(st, buf)
        stx = block_sum(stx, buf)
        if cuda.threadIdx.x == 0:
            lse[r] = lr
            tsum = (1.0 - smoothing) * st + smoothing
            loss[r] = lr * tsum - ((1.0 - smoothing) * stx + smoothing / k * sx)


@cuda.jit
def _cross_entropy_bwd(g, x, labels, lse, smoothing, out):
    k = x.shape[1]
    base = smoothing / k
    for j in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        r = j // k
        i = j % k
        t = base + (1.0 - smoothing) if i == labels[r] else base
        out[r, i] = g[r] * (safe_exp(x[r, i] - lse[r]) - t)


@cuda.jit
def _cross_entropy_soft_bwd(g, x, t, lse, smoothing, dx, dt):
    buf = cuda.shared.array(RB, float64)
    rows, k = x.shape
    base = smoothing / k
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        st = 0.0
        for i in range(cuda.threadIdx.x, k, RB):
            st += t[r, i]
        tsum = (1.0 - smoothing) * block_sum(st, buf) + smoothing
        gr = g[r]
        for i in range(cuda.threadIdx.x, k, RB):
            ti = (1.0 - smoothing) * t[r, i] + base
            dx[r, i] = gr * (safe_exp(x[r, i] - lse[r]) * tsum - ti)
            dt[r, i] = gr * (1.0 - smoothing) * (lse[r] - x[r, i])


def cross_entropy_fwd(x, labels, smoothing, loss, lse):
    """Per-row loss with integer labels and label smoothing; lse (R,) float64 is saved."""
    launch_reduce(_cross_entropy_fwd, x.shape[0], x, labels, smoothing, loss, lse)


def cross_entropy_bwd(g, x, labels, lse, smoothing, out):
    """out = g[r] * (softmax(x) - t) per row, t the smoothed one-hot target."""
    launch(_cross_entropy_bwd, x.size, g, x, labels, lse, smoothing, out)


def cross_entropy_soft_fwd(x, t, smoothing, loss, lse):
    """Per-row loss -sum(t' * log_softmax(x)) for probability targets t (R, K)."""
    launch_reduce(_cross_entropy_soft_fwd, x.shape[0], x, t, smoothing, loss, lse)


def cross_entropy_soft_bwd(g, x, t, lse, smoothing, dx, dt):
    """dx = g[r] * (softmax(x) * sum(t') - t'); dt = g[r] * (1 - smoothing) * (lse - x)."""
    launch_reduce(_cross_entropy_soft_bwd, x.shape[0], g, x, t, lse, smoothing, dx, dt)
