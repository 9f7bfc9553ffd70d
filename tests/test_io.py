"""Tests for lucid.io: safetensors / npz / torch-zip .pth loading and saving (numpy only)."""
import os
import pickle
import pickletools
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

import lucid.io as lio
from lucid.io import UnsafeCheckpointError

FORMATS = [".safetensors", ".npz", ".pth", ".pt"]
FIXTURES = Path(__file__).parent / "fixtures"


def _sample():
    rng = np.random.default_rng(0)
    return {
        "conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "head.bias": rng.standard_normal(5),  # float64
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),  # 0-d int64, as in timm
        "mask": np.array([[True, False, True]]),
        "scalar": np.float32(0.25),  # numpy scalar
        "empty": np.zeros((0, 2), np.float32),
        "file": np.arange(3, dtype=np.int32),  # would clash with np.savez(file=...)
    }


def _assert_same(got, want, ordered=False):
    assert set(got) == set(want)
    if ordered:
        assert list(got) == list(want)
    for key, value in want.items():
        value = np.asarray(value)
        assert isinstance(got[key], np.ndarray), key
        assert got[key].dtype == value.dtype, key
        assert got[key].shape == value.shape, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)


# ---------------------------------------------------------------------------
# Hand-built torch-style zip checkpoints (pickle opcodes, protocol 2)
# ---------------------------------------------------------------------------
def _tensor_ops(storage_type, storage_key, numel, offset, size, stride):
    """Opcodes that push torch._utils._rebuild_tensor_v2(storage, ...) as torch.save writes it."""
    pid = (b"(" + lio._pk("storage") + lio._global("torch", storage_type) + lio._pk(storage_key)
           + lio._pk("cpu") + lio._pk(numel) + b"tQ")
    odict = lio._global("collections", "OrderedDict") + b")R"
    return (lio._global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + lio._pk(offset)
            + lio._pk(tuple(size)) + lio._pk(tuple(stride)) + b"\x89" + odict + b"tR")


def _dict_ops(items):
    """Opcodes that push a dict built from (key, value_opcodes) pairs."""
    return b"}" + b"".join(lio._pk(k) + v + b"s" for k, v in items)


def _write_zip(path, pkl, storages=(), byteorder=b"little", prefix="archive/"):
    with zipfile.ZipFile(path, "w") as zf:
        if pkl is not None:
            zf.writestr(prefix + "data.pkl", pkl)
        if byteorder is not None:
            zf.writestr(prefix + "byteorder", byteorder)
        for key, data in dict(storages).items():
            zf.writestr(f"{prefix}data/{key}", data)
    return path


def _pickled(ops):
    return b"\x80\x02" + ops + b"."


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip(tmp_path, ext):
    tensors = _sample()
    path = tmp_path / f"weights{ext}"
    lio.save(path, tensors)
    got = lio.load(path)
    _assert_same(got, tensors, ordered=ext in (".pth", ".pt", ".npz"))
    assert all(v.flags.c_contiguous for v in got.values())
    assert os.listdir(tmp_path) == [path.name]


@pytest.mark.parametrize("ext", FORMATS)
def test_save_makes_non_contiguous_and_big_endian_inputs_exact(tmp_path, ext):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    tensors = {"t": base.T, "s": base[1:, ::2], "be": np.arange(5, dtype=">i4")}
    lio.save(tmp_path / f"x{ext}", tensors)
    got = lio.load(tmp_path / f"x{ext}")
    np.testing.assert_array_equal(got["t"], base.T)
    np.testing.assert_array_equal(got["s"], base[1:, ::2])
    np.testing.assert_array_equal(got["be"], np.arange(5))
    assert got["be"].dtype == np.dtype("int32")


def test_pth_file_layout_matches_torch(tmp_path):
    path = tmp_path / "w.pth"
    lio.save(path, {"a": np.ones((2, 3), np.float32), "b": np.array(3)})
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert {"archive/data.pkl", "archive/byteorder", "archive/data/0"} <= set(names)
        assert zf.read("archive/byteorder") == b"little"
        ops = pickletools.genops(zf.read("archive/data.pkl"))
        globals_used = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    assert globals_used == {"collections OrderedDict", "torch._utils _rebuild_tensor_v2",
                            "torch FloatStorage", "torch LongStorage"}
    with open(path, "rb") as fh:  # storages are 64-byte aligned like torch.save's
        zf = zipfile.ZipFile(fh)
        for info in zf.infolist():
            if "/data/" in info.filename:
                fh.seek(info.header_offset + 26)
                n, e = np.frombuffer(fh.read(4), "<u2")
                assert (info.header_offset + 30 + n + e) % 64 == 0


def test_pth_strided_views_shared_storage_bf16_and_big_endian(tmp_path):
    storage = np.arange(12, dtype="<f4")
    bf16_values = np.array([1.5, -2.0, 0.15625, 0.0], np.float32)
    bf16_bits = (bf16_values.view(np.uint32) >> 16).astype("<u2")
    items = [
        ("full", _tensor_ops("FloatStorage", "0", 12, 0, (3, 4), (4, 1))),
        ("transposed", _tensor_ops("FloatStorage", "0", 12, 0, (4, 3), (1, 4))),
        ("slice", _tensor_ops("FloatStorage", "0", 12, 5, (2, 3), (4, 1))),
        ("bf16", _tensor_ops("BFloat16Storage", "1", 4, 0, (4,), (1,))),
        ("half", _tensor_ops("HalfStorage", "2", 2, 0, (2,), (1,))),
    ]
    storages = {"0": storage.tobytes(), "1": bf16_bits.tobytes(),
                "2": np.array([0.5, 8.0], "<f2").tobytes()}
    got = lio.load(_write_zip(tmp_path / "v.pth", _pickled(_dict_ops(items)), storages))
    full = storage.reshape(3, 4)
    _assert_same(got, {"full": full, "transposed": full.T, "slice": full[1:, 1:],
                       "bf16": bf16_values, "half": np.array([0.5, 8.0], np.float16)}, ordered=True)

    big = {"0": storage.astype(">f4").tobytes()}
    got = lio.load(_write_zip(tmp_path / "b.pth", _pickled(_dict_ops(items[:1])), big, b"big"))
    _assert_same(got, {"full": full})


def test_pth_unwraps_checkpoint_and_flattens_nested(tmp_path):
    storages = {"0": np.arange(3, dtype="<i8").tobytes()}
    w = _tensor_ops("LongStorage", "0", 3, 0, (3,), (1,))
    for wrapper in ("state_dict", "model"):
        inner = _dict_ops([("layer.w", w)])
        outer = _dict_ops([("epoch", lio._pk(3)), (wrapper, inner), ("arch", lio._pk("convnext"))])
        got = lio.load(_write_zip(tmp_path / f"{wrapper}.pth", _pickled(outer), storages))
        _assert_same(got, {"layer.w": np.arange(3)})
    dec = _dict_ops([("w", w), ("n", lio._pk(2))])
    nested = _dict_ops([("enc", _dict_ops([("w", w)])), ("dec", dec)])
    got = lio.load(_write_zip(tmp_path / "nested.pth", _pickled(nested), storages))
    want = {"enc.w": np.arange(3), "dec.w": np.arange(3), "dec.n": np.array(2)}
    _assert_same(got, want, ordered=True)


# ---------------------------------------------------------------------------
# Safety of .pth loading
# ---------------------------------------------------------------------------
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pth_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _Evil(marker)}, protocol=2)
    path = _write_zip(tmp_path / "evil.pth", payload)
    with pytest.raises(UnsafeCheckpointError, match=r"system") as err:
        lio.load(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("torch", "load"),
                                         ("torch._utils", "_rebuild_device_tensor_from_numpy"),
                                         ("numpy.core.multiarray", "_reconstruct")])
def test_unlisted_globals_are_refused(tmp_path, module, name):
    path = _write_zip(tmp_path / "g.pth", _pickled(lio._global(module, name) + b")R"))
    with pytest.raises(UnsafeCheckpointError, match=re.escape(f"{module}.{name}")):
        lio.load(path)


def test_pickle_cannot_tamper_with_stand_ins(tmp_path):
    # BUILD on an allowed global tries to overwrite its attributes; must fail cleanly.
    for target in (("torch._utils", "_rebuild_tensor_v2"), ("torch", "FloatStorage"),
                   ("collections", "OrderedDict")):
        ops = lio._global(*target) + b"}" + lio._pk("fn") + lio._pk(0) + b"sb"
        with pytest.raises(ValueError, match="data.pkl"):
            lio.load(_write_zip(tmp_path / "t.pth", _pickled(ops)))
    tensors = {"w": np.ones(3, np.float32)}
    lio.save(tmp_path / "ok.pth", tensors)
    _assert_same(lio.load(tmp_path / "ok.pth"), tensors)


def test_out_of_bounds_strides_are_rejected(tmp_path):
    ops = _dict_ops([("w", _tensor_ops("FloatStorage", "0", 4, 2, (2, 2), (2, 1)))])
    path = _write_zip(tmp_path / "oob.pth", _pickled(ops), {"0": np.zeros(4, "<f4").tobytes()})
    with pytest.raises(ValueError, match="overruns"):
        lio.load(path)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("fraction", [0.0, 0.003, 0.5, 0.97])
def test_truncated_files_raise_value_error_naming_path(tmp_path, ext, fraction):
    good = tmp_path / f"good{ext}"
    lio.save(good, _sample())
    data = good.read_bytes()
    bad = tmp_path / f"bad{ext}"
    bad.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        lio.load(bad)


def test_pth_missing_members(tmp_path):
    ops = _pickled(_dict_ops([("w", _tensor_ops("FloatStorage", "0", 2, 0, (2,), (1,)))]))
    with pytest.raises(ValueError, match=r"data/0.*missing"):
        lio.load(_write_zip(tmp_path / "nostorage.pth", ops))
    with pytest.raises(ValueError, match="data.pkl"):
        lio.load(_write_zip(tmp_path / "nopkl.pth", None, {"0": b"\0" * 8}))
    with pytest.raises(ValueError, match="truncated"):
        lio.load(_write_zip(tmp_path / "short.pth", ops, {"0": b"\0" * 5}))
    with pytest.raises(ValueError, match="not a tensor"):
        lio.load(_write_zip(tmp_path / "str.pth", _pickled(_dict_ops([("w", lio._pk("x"))]))))


def test_legacy_and_non_dict_pth(tmp_path):
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + b"rest")
    with pytest.raises(ValueError, match="zip format"):
        lio.load(legacy)
    with pytest.raises(ValueError, match="expected a dict"):
        lio.load(_write_zip(tmp_path / "list.pth", _pickled(b"]")))
    script = _write_zip(tmp_path / "script.pt", _pickled(b"}"))
    with zipfile.ZipFile(script, "a") as zf:
        zf.writestr("archive/constants.pkl", _pickled(b")"))
    with pytest.raises(ValueError, match="TorchScript"):
        lio.load(script)


def test_npz_containing_single_npy(tmp_path):
    path = tmp_path / "x.npz"
    with open(path, "wb") as f:
        np.save(f, np.ones(3))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        lio.load(path)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        lio.load(tmp_path / "nope.safetensors")
    (tmp_path / "w.h5").write_bytes(b"x")
    for call in (lambda: lio.load(tmp_path / "w.h5"), lambda: lio.save(tmp_path / "w.bin", {})):
        with pytest.raises(ValueError, match=r"\.safetensors, \.npz, \.pth, \.pt") as err:
            call()
        assert "w." in str(err.value)
    assert not (tmp_path / "w.bin").exists()


@pytest.mark.parametrize("tensors,match", [
    ({1: np.ones(2)}, "keys must be str"),
    ({"w": [1.0, 2.0]}, r"'w'.*list"),
    ({"w": 3.0}, r"'w'.*float"),
    ({"w": np.array(["a"])}, r"'w'.*dtype"),
    ([("w", np.ones(2))], "dict"),
])
def test_bad_values_raise_type_error(tmp_path, tensors, match):
    for ext in FORMATS:
        with pytest.raises(TypeError, match=match):
            lio.save(tmp_path / f"w{ext}", tensors)
    assert os.listdir(tmp_path) == []


def test_pth_rejects_dtypes_torch_cannot_store(tmp_path):
    with pytest.raises(TypeError, match=r"'u'.*uint32"):
        lio.save(tmp_path / "w.pth", {"u": np.ones(2, np.uint32)})


# ---------------------------------------------------------------------------
# Atomicity
# ---------------------------------------------------------------------------
class _FailingFile:
    """Proxy for the temp file that raises OSError once `limit` bytes were written."""

    def __init__(self, f, limit):
        self._f, self._limit, self.written = f, limit, 0

    def write(self, data):
        if self.written + len(data) > self._limit:
            self._f.write(bytes(data)[: self._limit - self.written])
            raise OSError(28, "No space left on device (simulated)")
        self.written += len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


@pytest.mark.parametrize("ext", FORMATS)
def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch, ext):
    path = tmp_path / f"ckpt{ext}"
    old = {"w": np.arange(10, dtype=np.float32)}
    lio.save(path, old)
    before = path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *a, **k: _FailingFile(real_fdopen(*a, **k), 600))
    with pytest.raises(OSError, match="simulated"):
        lio.save(path, {"w": np.ones((64, 64), np.float32), "b": np.zeros(3)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    _assert_same(lio.load(path), old)
    assert os.listdir(tmp_path) == [path.name]


def test_atomic_write_text_and_exception_in_body(tmp_path):
    path = tmp_path / "log.json"
    with lio.atomic_write(path, "w") as f:
        f.write('{"step": 1}')
    assert path.read_text() == '{"step": 1}'
    with pytest.raises(RuntimeError):
        with lio.atomic_write(path) as f:
            f.write(b"partial")
            raise RuntimeError("crash mid-checkpoint")
    assert path.read_text() == '{"step": 1}'
    assert os.listdir(tmp_path) == ["log.json"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with lio.atomic_write(tmp_path / "missing_dir" / "x.bin"):
            pass
    with pytest.raises(ValueError):
        with lio.atomic_write(path, "ab"):
            pass


def test_atomic_write_keeps_permissions_of_existing_file(tmp_path):
    path = tmp_path / "w.npz"
    lio.save(path, {"a": np.ones(1)})
    os.chmod(path, 0o640)
    lio.save(path, {"a": np.zeros(1)})
    assert path.stat().st_mode & 0o777 == 0o640


# ---------------------------------------------------------------------------
# Real torch.save output (fixture generated elsewhere with torch)
# ---------------------------------------------------------------------------
def test_real_torch_checkpoint_matches_safetensors():
    pth = FIXTURES / "convnext_convmlp_state.pth"
    st = pth.with_suffix(".safetensors")
    if not (pth.exists() and st.exists()):
        pytest.skip(f"fixtures {pth.name} / {st.name} not present in {FIXTURES}")
    got, want = lio.load(pth), lio.load(st)
    _assert_same(got, want)
