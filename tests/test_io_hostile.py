"""lucid.io.load on hostile and odd files (issue 10): every refusal is a quick ValueError
naming the file, and memory stays bounded (tracemalloc sees NumPy's and Python's
allocations; each crafted file is a few kilobytes)."""
import os
import struct
import threading
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

import lucid.io as lio
from test_io import _dict_ops, _pickled, _tensor_ops, _write_zip

MB = 1 << 20


def _peak_bytes(fn):
    """(result or exception, peak traced bytes) of fn()."""
    tracemalloc.start()
    try:
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 - returned for the caller to assert on
            out = e
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _refused(path, match, peak=4 * MB):
    err, used = _peak_bytes(lambda: lio.load(path))
    assert isinstance(err, ValueError), f"expected ValueError, got {err!r}"
    assert str(path) in str(err), str(err)
    assert match in str(err), str(err)
    assert used < peak, f"peak {used} bytes"
    return err


def _patch_zip(path, member, **fields):
    """Rewrite header fields of ``member`` in the local and central headers: flag,
    method, csize, usize (what a tampered archive can declare)."""
    data = bytearray(open(path, "rb").read())
    name = member.encode()
    local = {"flag": (6, "<H"), "method": (8, "<H"), "csize": (18, "<I"), "usize": (22, "<I")}
    central = {"flag": (8, "<H"), "method": (10, "<H"), "csize": (20, "<I"),
               "usize": (24, "<I")}
    for sig, layout, name_at in ((b"PK\x03\x04", local, 30), (b"PK\x01\x02", central, 46)):
        at = data.find(sig)
        while at >= 0:
            if data[at + name_at:at + name_at + len(name)] == name:
                for key, value in fields.items():
                    off, fmt = layout[key]
                    struct.pack_into(fmt, data, at + off, value)
            at = data.find(sig, at + 4)
    open(path, "wb").write(bytes(data))


def _npy_bytes(arr):
    import io
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _one_tensor_pth(path, numel=4, size=(4,), stride=(1,), storage=None, **zip_kw):
    ops = _pickled(_dict_ops([("w", _tensor_ops("FloatStorage", "0", numel, 0, size, stride))]))
    data = np.arange(numel, dtype="<f4").tobytes() if storage is None else storage
    return _write_zip(path, ops, {"0": data}, **zip_kw)


# ----------------------------------------------------------------------------- not regular

@pytest.mark.parametrize("ext", [".pth", ".npz", ".safetensors", ".pt"])
def test_symlink_to_dev_zero_is_refused(tmp_path, ext):
    path = tmp_path / f"zero{ext}"
    os.symlink("/dev/zero", path)
    _refused(path, "expected a regular file, found a character device")


@pytest.mark.parametrize("ext", [".pth", ".npz", ".safetensors"])
def test_fifo_is_refused_without_blocking(tmp_path, ext):
    path = tmp_path / f"pipe{ext}"
    os.mkfifo(path)
    result = []
    worker = threading.Thread(target=lambda: result.append(_peak_bytes(lambda: lio.load(path))),
                              daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "load blocked on a FIFO"
    err = result[0][0]
    assert isinstance(err, ValueError) and "found a FIFO" in str(err) and str(path) in str(err)


# ----------------------------------------------------------------------------- .pth

def test_stride_zero_tensor_stays_a_view(tmp_path):
    """526-byte class of file: one float declared as a (2**20, 2**20) tensor (4 TiB)."""
    path = _one_tensor_pth(tmp_path / "s0.pth", 1, (2 ** 20, 2 ** 20), (0, 0))
    assert path.stat().st_size < 2000
    got, used = _peak_bytes(lambda: lio.load(path))
    w = got["w"]
    assert w.shape == (2 ** 20, 2 ** 20) and w[12345, 999] == 0.0
    assert not w.flags.writeable and not w.flags.owndata
    assert used < MB


def test_overlapping_strides_stay_views(tmp_path):
    path = _one_tensor_pth(tmp_path / "ov.pth", 8, (6, 3), (1, 1))  # rows overlap
    w = lio.load(path)["w"]
    np.testing.assert_array_equal(w, np.arange(6)[:, None] + np.arange(3))
    assert not w.flags.writeable


def test_many_copies_of_one_storage_become_views(tmp_path):
    """Tensors may copy out of a storage at most its size in total; the rest are views."""
    n = 100_000
    items = [(f"t{i}", _tensor_ops("FloatStorage", "0", n, 0, (n,), (1,))) for i in range(50)]
    path = _write_zip(tmp_path / "rep.pth", _pickled(_dict_ops(items)),
                      {"0": np.arange(n, dtype="<f4").tobytes()})
    got, used = _peak_bytes(lambda: lio.load(path))
    assert got["t0"].flags.writeable and got["t0"].flags.owndata      # the first: a copy
    assert all(not got[f"t{i}"].flags.writeable for i in range(1, 50))
    for v in got.values():
        np.testing.assert_array_equal(v, np.arange(n, dtype=np.float32))
    assert used < 4 * n * 4  # 50 copies would be 50 * n * 4


def test_storage_member_is_streamed_not_inflated_whole(tmp_path):
    """A 16 MB deflated member of zeros (a few KB in the file) backing a 4-element tensor:
    only the 16 declared bytes are inflated."""
    path = tmp_path / "bomb.pth"
    ops = _pickled(_dict_ops([("w", _tensor_ops("FloatStorage", "0", 4, 0, (4,), (1,)))]))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", ops)
        zf.writestr("archive/data/0", bytes(16 * MB))
    assert path.stat().st_size < 100_000
    got, used = _peak_bytes(lambda: lio.load(path))
    np.testing.assert_array_equal(got["w"], np.zeros(4, np.float32))
    assert used < 2 * MB


def test_storage_numel_beyond_member_is_refused(tmp_path):
    path = _one_tensor_pth(tmp_path / "n.pth", 2 ** 40, (2,), (1,), storage=b"\0" * 16)
    _refused(path, "truncated")


def test_member_declaring_more_than_the_file_holds(tmp_path):
    path = _one_tensor_pth(tmp_path / "d.pth")
    _patch_zip(path, "archive/data/0", usize=2 ** 31)
    _refused(path, "the file can hold at most")


def test_deflated_data_pkl_above_the_memory_cap(tmp_path, monkeypatch):
    path = tmp_path / "pkl.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", bytes(8 * MB))
    monkeypatch.setenv("LUCID_MAX_ALLOC_BYTES", str(MB))
    _refused(path, "more than the 1.0 MiB of memory available")


@pytest.mark.parametrize("ext", [".pth", ".npz"])
def test_encrypted_member_is_refused(tmp_path, ext):
    if ext == ".pth":
        path, member = _one_tensor_pth(tmp_path / "e.pth"), "archive/data.pkl"
    else:
        path, member = tmp_path / "e.npz", "w.npy"
        lio.save(path, {"w": np.ones(3)})
    _patch_zip(path, member, flag=1)
    _refused(path, "is encrypted")


def test_unknown_compression_method_is_refused(tmp_path):
    path = _one_tensor_pth(tmp_path / "m.pth")
    _patch_zip(path, "archive/data/0", method=14)  # LZMA: ratios beyond deflate's bound
    _refused(path, "compression method 14")


def test_shared_dict_dag_is_refused(tmp_path):
    """memo GETs make 40 levels of {a: d, b: d} a 2**40-key 'state dict' in 300 bytes."""
    ops = b"}" + lio._pk("leaf") + lio._pk(1) + b"s" + b"q\x00"
    for level in range(40):
        ops += b"}" + lio._pk("a") + b"h" + bytes([level % 2]) + b"s" + lio._pk("b") \
            + b"h" + bytes([level % 2]) + b"s" + b"q" + bytes([(level + 1) % 2])
    path = _write_zip(tmp_path / "dag.pth", _pickled(ops))
    _refused(path, "appears more than once")


# ----------------------------------------------------------------------------- .npz

def _npz(path, members, method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_npz_member_that_is_not_npy_is_refused(tmp_path):
    path = _npz(tmp_path / "raw.npz", {"w.npy": _npy_bytes(np.ones(2)), "notes.txt": b"hi"})
    _refused(path, "member 'notes.txt' is not a .npy array")


def test_npz_bad_magic_and_object_dtype(tmp_path):
    _refused(_npz(tmp_path / "m.npz", {"w.npy": b"PK-not-npy" * 4}), "bad magic")
    obj = _npz(tmp_path / "o.npz", {"w.npy": _npy_bytes(np.array([{"a": 1}], dtype=object))})
    _refused(obj, "Python objects")


def test_npz_huge_header_is_refused(tmp_path):
    member = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2 ** 31) + b"{" * 64
    _refused(_npz(tmp_path / "h.npz", {"w.npy": member}), "declares 2147483648 bytes")


def test_npz_shape_beyond_the_member_is_refused(tmp_path):
    raw = _npy_bytes(np.ones(4, "<f8"))
    raw = raw.replace(b"(4,), }    ", b"(1000000,), }")  # same header length: 8 MB declared
    _refused(_npz(tmp_path / "s.npz", {"w.npy": bytes(raw)}), "the file can hold at most")


def test_npz_deflate_bomb_is_bounded_by_the_cap(tmp_path, monkeypatch):
    """A 50 KB file holding a legitimately declared 32 MB array: fine by default, refused
    when over the memory cap before anything is inflated."""
    path = _npz(tmp_path / "z.npz", {"w.npy": _npy_bytes(np.zeros(4 * MB))}, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 100_000
    monkeypatch.setenv("LUCID_MAX_ALLOC_BYTES", str(4 * MB))
    _refused(path, "member 'w.npy' declares 32.0 MiB")
    monkeypatch.delenv("LUCID_MAX_ALLOC_BYTES")
    assert lio.load(path)["w"].shape == (4 * MB,)


def test_npz_fortran_order_and_zero_size_round_trip(tmp_path):
    f = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    path = _npz(tmp_path / "f.npz", {"f.npy": _npy_bytes(f), "e.npy": _npy_bytes(np.zeros((0, 3)))})
    got = lio.load(path)
    np.testing.assert_array_equal(got["f"], f)
    assert got["e"].shape == (0, 3)


def test_deflate_ratio_bound_covers_zlib():
    """MAX_DEFLATE_RATIO must bound what deflate can really do (else legit files fail)."""
    from lucid._safe_files import MAX_DEFLATE_RATIO
    raw = bytes(8 * MB)
    ratio = len(raw) / len(zlib.compress(raw, 9))
    assert ratio < MAX_DEFLATE_RATIO
