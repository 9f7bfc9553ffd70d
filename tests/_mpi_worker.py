"""Run by tests/test_distributed.py under ``mpiexec -n 2``: ``python _mpi_worker.py MODE ARGS``.

Modes:
  semantics             allreduce / broadcast / check_same / GradSync on both ranks; prints
                        "OK rank R" when every check passed.
  train ARGS...         ``lucid train ARGS`` with every checkpoint write logged (the writing
                        rank appended to $LUCID_TEST_WRITERS).
  fail ARGS...          ``lucid train ARGS`` where rank 1 raises in its second training step.
"""
import os
import sys

import numpy as np

import lucid
import lucid.distributed as dist
import lucid.numpy as lnp


def _expect_error(kind, fn, text):
    try:
        fn()
    except kind as e:
        assert text in str(e), str(e)
        return
    raise AssertionError(f"expected {kind.__name__} containing {text!r}")


def _check_reductions(r):
    tree = {"a": np.full((2, 3), r + 1, np.float32), "b": [np.arange(4, dtype=np.int64) * (r + 1),
                                                          2.5 * (r + 1)],
            "c": (np.float64(r), np.array(r + 1, np.int32))}
    s = dist.allreduce(tree, op="sum")
    assert s["a"].dtype == np.float32 and np.array_equal(s["a"], np.full((2, 3), 3, np.float32))
    assert s["b"][0].dtype == np.int64 and np.array_equal(s["b"][0], np.arange(4) * 3)
    assert type(s["b"][1]) is float and s["b"][1] == 7.5
    assert isinstance(s["c"][0], np.float64) and s["c"][0] == 1.0
    assert s["c"][1].dtype == np.int32 and s["c"][1].shape == () and int(s["c"][1]) == 3
    m = dist.allreduce({"x": np.array([r, 2 * r], np.float64), "y": np.float32(r + 0.5)}, op="mean")
    assert np.array_equal(m["x"], [0.5, 1.0]) and m["y"] == np.float32(1.0)
    _expect_error(TypeError, lambda: dist.allreduce({"i": np.arange(3)}, op="mean"), "op='sum'")
    b = dist.broadcast(tree, root=1)
    assert np.array_equal(b["a"], np.full((2, 3), 2, np.float32)) and b["b"][1] == 5.0
    assert b["c"][1].dtype == np.int32 and int(b["c"][1]) == 2
    # rank-dependent shapes: every rank gets the error, none hangs
    _expect_error(ValueError, lambda: dist.allreduce(np.zeros(r + 1), op="sum"), "different pytrees")
    _expect_error(RuntimeError, lambda: dist.check_same({"p": np.float32(r)}, "test values"),
                  "differ across ranks")
    dist.check_same({"p": np.ones(3)}, "test values")  # equal: no error


def _check_grad_sync(r):
    params = {"w": np.ones(600, np.float32), "b": np.ones(3, np.float64),
              "v": np.ones((5, 5), np.float32), "z": np.ones(700, np.float32)}
    data = lucid.tree.map(lambda p: (np.arange(p.size).reshape(p.shape) % 7 + 10 * r).astype(p.dtype),
                          params)
    sync = dist.GradSync(params, bucket_bytes=1024)
    assert len(sync.buckets) == 3, len(sync.buckets)  # f64 | v, w | z (1024-byte cut)

    def loss(p):
        total = 0.0
        for k in sorted(p):
            total = lnp.add(total, lnp.sum(lnp.multiply(p[k], data[k])))
        return total

    other = lucid.tree.map(lambda p: (np.arange(p.size).reshape(p.shape) % 7 + 10 * (1 - r)).astype(p.dtype),
                           params)
    for step in range(3):
        with sync.overlap():
            grads = lucid.grad(loss)(params)
        summed = sync.finish(grads)
        for k in params:
            assert summed[k].dtype == params[k].dtype
            assert np.array_equal(summed[k], data[k] + other[k]), (step, k)
        assert sync.overlapped == (step > 0), (step, sync.overlapped)
    assert sync.loss_scale(3 if r == 0 else 2) == (0.6 if r == 0 else 0.4)


def semantics():
    dist.init()
    r = dist.rank()
    assert dist.world_size() == 2 and dist.is_main() == (r == 0)
    _check_reductions(r)
    _check_grad_sync(r)
    dist.barrier()
    print(f"OK rank {r}", flush=True)


def train(argv):
    import lucid.cli._run as run_module
    original = run_module.save_checkpoint

    def logged(*a, **k):
        with open(os.environ["LUCID_TEST_WRITERS"], "a") as f:
            f.write(f"{dist.rank()}\n")
        return original(*a, **k)

    run_module.save_checkpoint = logged
    from lucid.cli import main
    return main(argv)


def fail(argv):
    import lucid.cli._distributed as cli_dist
    original = cli_dist.make_train_step

    def make(*a, **k):
        step = original(*a, **k)

        def failing(ts, x, y, key):
            if dist.rank() == 1 and ts.step == 1:
                raise RuntimeError("injected failure in the second step")
            return step(ts, x, y, key)
        return failing

    cli_dist.make_train_step = make
    from lucid.cli import main
    return main(argv)


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "semantics":
        semantics()
    else:
        sys.exit({"train": train, "fail": fail}[mode](rest))
