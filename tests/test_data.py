"""lucid.data: the embedded synthetic dataset, image folders, npz files, batching, augmentation."""
import numpy as np
import pytest
from PIL import Image

import lucid
from lucid import data

KEY = lucid.random.key(0)


def _tiny(n=10, c=3, h=4, w=5, dtype=np.uint8):
    x = (np.arange(n * c * h * w) % 251).astype(dtype).reshape(n, c, h, w)
    return data.Dataset(x, np.arange(n) % 3, ("a", "b", "c"))


# ---- synthetic dataset ----

def test_synthetic_is_deterministic_and_typed():
    a = data.load_synthetic("train", n=64, seed=3)
    b = data.load_synthetic("train", n=64, seed=3)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.x.shape == (64, 3, 32, 32) and a.x.dtype == np.uint8 and a.y.dtype == np.int64
    assert a.classes == data.SYNTHETIC_CLASSES and a.num_classes == len(a.classes)
    assert a.mean.shape == (3,) and a.std.dtype == np.float32
    other = data.load_synthetic("train", n=64, seed=4)
    assert not np.array_equal(a.x, other.x)
    assert data.load_synthetic("test", n=8, image_size=48).x.shape == (8, 3, 48, 48)


def test_synthetic_splits_are_disjoint_and_balanced():
    train = data.load_synthetic("train", n=800)
    test = data.load_synthetic("test", n=200)
    seen = {img.tobytes() for img in train.x}
    assert not any(img.tobytes() in seen for img in test.x)
    assert len(seen) == len(train)  # no duplicates within a split either
    counts = np.bincount(train.y, minlength=train.num_classes)
    assert counts.max() - counts.min() <= 1
    assert len(data.load_synthetic("test")) == 2000


def test_synthetic_is_learnable_by_a_linear_model():
    """A softmax regression on pooled edge energies beats chance (1/8) by far."""
    train, test = data.load_synthetic("train", n=1500), data.load_synthetic("test", n=400)

    def cells(a):  # mean over 4x4 cells of the top-left 28x28 pixels
        return a[:, :28, :28].reshape(len(a), 7, 4, 7, 4).mean((2, 4)).reshape(len(a), -1)

    def features(x):
        g = x.astype(np.float32).mean(1) / 255
        gx, gy = np.abs(np.diff(g, axis=2))[:, :-1], np.abs(np.diff(g, axis=1))[:, :, :-1]
        return np.concatenate([cells(gx), cells(gy), cells(gx * gy)], axis=1)

    f_train, f_test = features(train.x), features(test.x)
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-6
    f_train, f_test = (f_train - mu) / sd, (f_test - mu) / sd
    w, b, onehot = np.zeros((f_train.shape[1], 8)), np.zeros(8), np.eye(8)[train.y]
    for _ in range(150):
        z = f_train @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        w -= 0.5 * f_train.T @ (p - onehot) / len(p)
        b -= 0.5 * (p - onehot).mean(0)
    assert np.mean(np.argmax(f_test @ w + b, axis=1) == test.y) > 0.6


@pytest.mark.parametrize("kwargs, match", [
    (dict(split="val"), "split"), (dict(n=0), "n must be"), (dict(image_size=8), "image_size"),
    (dict(seed=-1), "seed"), (dict(n=2.5), "n must be"),
])
def test_synthetic_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load_synthetic(**kwargs)


# ---- Dataset ----

def test_dataset_stats_and_validation():
    ds = _tiny()
    flat = ds.x.transpose(1, 0, 2, 3).reshape(3, -1) / 255
    np.testing.assert_allclose(ds.mean, flat.mean(1), rtol=1e-6)
    np.testing.assert_allclose(ds.std, flat.std(1), rtol=1e-5)
    sub = ds.subset([2, 0])
    np.testing.assert_array_equal(sub.y, [2, 0])
    np.testing.assert_array_equal(sub.mean, ds.mean)
    with pytest.raises(ValueError, match="x must be an \\(N, C, H, W\\)"):
        data.Dataset(np.zeros((2, 4, 4), np.uint8), np.zeros(2, int), ("a",))
    with pytest.raises(ValueError, match="y must be \\(2,\\)"):
        data.Dataset(np.zeros((2, 1, 4, 4), np.uint8), np.zeros(3, int), ("a",))
    with pytest.raises(ValueError, match="labels must be in \\[0, 1\\)"):
        data.Dataset(np.zeros((2, 1, 4, 4), np.uint8), np.array([0, 1]), ("a",))
    with pytest.raises(ValueError, match="std must be positive"):
        ds.with_stats([0, 0, 0], [1, 0, 1])


def test_train_test_split():
    ds = _tiny(n=20)
    train, test = data.train_test_split(ds, 0.25, key=KEY)
    assert len(train) == 15 and len(test) == 5
    both = np.concatenate([train.x, test.x]).reshape(20, -1)
    assert len({row.tobytes() for row in both}) == 20
    with pytest.raises(ValueError, match="test_fraction"):
        data.train_test_split(ds, 1.0, key=KEY)


# ---- image folders ----

def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    imgs = {f"{cls}/{i}.png": rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
            for cls in ("dog", "cat") for i in range(2)}
    for rel, arr in imgs.items():
        _write_png(tmp_path / rel, arr)
    _write_png(tmp_path / "cat" / "grey.PNG", np.full((6, 8), 7, np.uint8))
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden").mkdir()
    ds = data.load_image_folder(tmp_path)
    assert ds.classes == ("cat", "dog") and ds.x.shape == (5, 3, 6, 8)
    np.testing.assert_array_equal(ds.y, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(ds.x[0], imgs["cat/0.png"].transpose(2, 0, 1))
    np.testing.assert_array_equal(ds.x[2], 7)  # grey converted to RGB
    np.testing.assert_array_equal(ds.x[4], imgs["dog/1.png"].transpose(2, 0, 1))


def test_image_folder_resizes_mixed_sizes(tmp_path):
    _write_png(tmp_path / "a" / "wide.png", np.zeros((10, 20, 3), np.uint8))
    _write_png(tmp_path / "b" / "small.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="image_size"):
        data.load_image_folder(tmp_path)
    assert data.load_image_folder(tmp_path, image_size=8).x.shape == (2, 3, 8, 8)
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "a" / "photo.jpg")
    assert len(data.load_image_folder(tmp_path, image_size=8)) == 3


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class folders"):
        data.load_image_folder(tmp_path)
    _write_png(tmp_path / "a" / "ok.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="'.*empty' has no images"):
        data.load_image_folder(tmp_path)
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="cannot read the image '.*broken.png'"):
        data.load_image_folder(tmp_path)


# ---- npz ----

def test_npz_nchw_and_nhwc_uint8(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (5, 3, 6, 7), dtype=np.uint8)
    y = np.array([0, 1, 2, 1, 0])
    np.savez(tmp_path / "nchw.npz", x=x, y=y)
    np.savez(tmp_path / "nhwc.npz", x=x.transpose(0, 2, 3, 1), y=y,
             classes=np.array(["r", "g", "b"]))
    a, b = data.load_npz(tmp_path / "nchw.npz"), data.load_npz(tmp_path / "nhwc.npz")
    np.testing.assert_array_equal(a.x, x)
    np.testing.assert_array_equal(b.x, x)
    assert a.x.dtype == np.uint8 and a.classes == ("0", "1", "2") and b.classes == ("r", "g", "b")
    np.testing.assert_array_equal(b.y, y)


def test_npz_float_grey_and_layout_override(tmp_path):
    np.savez(tmp_path / "f.npz", x=np.ones((4, 28, 28), np.float64), y=np.arange(4))
    ds = data.load_npz(tmp_path / "f.npz")
    assert ds.x.shape == (4, 1, 28, 28) and ds.x.dtype == np.float32
    np.savez(tmp_path / "amb.npz", x=np.zeros((2, 3, 5, 3), np.uint8), y=np.zeros(2, int))
    with pytest.raises(ValueError, match="ambiguous.*layout="):
        data.load_npz(tmp_path / "amb.npz")
    assert data.load_npz(tmp_path / "amb.npz", layout="NHWC").x.shape == (2, 3, 3, 5)


@pytest.mark.parametrize("arrays, match", [
    (dict(x=np.zeros((2, 3, 4, 4), np.uint8)), "needs 'x'.*missing \\['y'\\]"),
    (dict(x=np.zeros((2, 5, 4, 4), np.uint8), y=np.zeros(2, int)), "channel dim"),
    (dict(x=np.zeros((2, 3, 4, 4), np.uint8), y=np.zeros(3, int)), "y must be \\(2,\\)"),
    (dict(x=np.zeros((2, 3, 4, 4), np.uint8), y=np.zeros(2)), "integer labels"),
    (dict(x=np.full((2, 3, 4, 4), 300), y=np.zeros(2, int)), "0..255"),
    (dict(x=np.full((2, 3, 4, 4), np.nan), y=np.zeros(2, int)), "NaN"),
    (dict(x=np.zeros((2, 3, 4, 4), np.uint8), y=np.array([0, 2]), classes=np.array(["a"])),
     "names 1 classes"),
])
def test_npz_errors(tmp_path, arrays, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        data.load_npz(tmp_path / "bad.npz")


def test_npz_missing_and_unreadable(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_npz(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read '.*junk.npz'"):
        data.load_npz(tmp_path / "junk.npz")


# ---- batches ----

def test_batches_cover_each_example_once_and_are_deterministic():
    ds = _tiny(n=10)
    epoch = list(data.batches(ds, 3, key=KEY))
    assert [len(y) for _, y in epoch] == [3, 3, 3, 1] and len(data.batches(ds, 3, key=KEY)) == 4
    xs = np.concatenate([x for x, _ in epoch])
    assert xs.dtype == np.float32 and xs.shape == (10, 3, 4, 5)
    want = data.normalize(ds.x, ds.mean, ds.std)
    order = [int(np.flatnonzero((want == x).all(axis=(1, 2, 3)))[0]) for x in xs]
    assert sorted(order) == list(range(10)) and order != list(range(10))
    np.testing.assert_array_equal(np.concatenate([y for _, y in epoch]), ds.y[order])
    again = np.concatenate([x for x, _ in data.batches(ds, 3, key=KEY)])
    np.testing.assert_array_equal(again, xs)
    other = np.concatenate([x for x, _ in data.batches(ds, 3, key=lucid.random.key(1))])
    assert not np.array_equal(other, xs)
    fixed = list(data.batches(ds, 4, shuffle=False, drop_last=True))
    assert len(fixed) == 2
    np.testing.assert_array_equal(fixed[1][1], ds.y[4:8])


def test_start_batch_equals_slicing():
    ds = _tiny(n=11)
    aug = data.RandomCropFlip(padding=1)
    full = list(data.batches(ds, 2, key=KEY, augment=aug))
    resumed = data.batches(ds, 2, key=KEY, augment=aug, start_batch=3)
    assert len(resumed) == len(full) - 3
    for (xa, ya), (xb, yb) in zip(full[3:], resumed, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_normalisation():
    ds = data.load_synthetic("train", n=256)
    x = np.concatenate([b for b, _ in data.batches(ds, 64, shuffle=False)])
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1.0, atol=1e-3)
    x, _ = next(iter(data.batches(ds, 4, shuffle=False, mean=[0.5] * 3, std=[0.25] * 3)))
    np.testing.assert_allclose(x, (ds.x[:4] / 255 - 0.5) / 0.25, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(batch_size=11, key=KEY), ValueError, "batch size 11 is larger than the dataset"),
    (dict(batch_size=0, key=KEY), ValueError, "batch_size must be a positive int"),
    (dict(batch_size=2), ValueError, "need a key"),
    (dict(batch_size=2, shuffle=False, augment=data.RandomCropFlip()), ValueError, "need a key"),
    (dict(batch_size=2, key=KEY, start_batch=6), ValueError, "past the end"),
    (dict(batch_size=2, key=KEY, augment="flip"), TypeError, "augment must be"),
    (dict(batch_size=2, key=np.array([1, 2])), TypeError, "key must be"),
    (dict(batch_size=2, key=KEY, mean=[0.0] * 2), ValueError, "3 values"),
])
def test_batches_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        data.batches(_tiny(n=10), **kwargs)


def test_batches_empty_dataset():
    empty = data.Dataset(np.zeros((0, 3, 4, 4), np.uint8), np.zeros(0, int), ("a",))
    with pytest.raises(ValueError, match="empty"):
        data.batches(empty, 1, key=KEY)


# ---- augmentation ----

def test_random_crop_is_a_padded_window():
    x = (np.arange(64 * 2 * 3 * 3) % 200 + 1).astype(np.uint8).reshape(64, 2, 3, 3)
    out = data.random_crop(KEY, x, padding=1)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    offsets = set()
    for i in range(len(x)):
        hits = [(dy, dx) for dy in range(3) for dx in range(3)
                if np.array_equal(out[i], padded[i, :, dy:dy + 3, dx:dx + 3])]
        assert hits, f"image {i} is not a crop of its padded input"
        offsets.update(hits)
    assert len(offsets) == 9 and out.dtype == np.uint8  # every offset occurs
    np.testing.assert_array_equal(data.random_crop(KEY, x, 1), out)
    assert not np.array_equal(data.random_crop(lucid.random.key(5), x, 1), out)
    np.testing.assert_array_equal(data.random_crop(KEY, x, 0), x)


def test_random_flip_on_a_hand_made_image():
    img = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)[None]  # (1, 1, 2, 3)
    x = np.repeat(img, 32, axis=0)
    out = data.random_flip(KEY, x)
    flipped = np.array([[[3, 2, 1], [6, 5, 4]]], np.uint8)
    is_flipped = [np.array_equal(o, flipped) for o in out]
    assert all(f or np.array_equal(o, img[0]) for f, o in zip(is_flipped, out))
    assert 0 < sum(is_flipped) < 32
    np.testing.assert_array_equal(data.random_flip(KEY, x, p=1.0)[5], flipped)
    np.testing.assert_array_equal(data.random_flip(KEY, x), out)


def test_augment_errors_and_identity():
    x = _tiny().x
    np.testing.assert_array_equal(data.RandomCropFlip(padding=0, flip=False)(KEY, x), x)
    with pytest.raises(ValueError, match="padding must be"):
        data.RandomCropFlip(padding=-1)
    with pytest.raises(ValueError, match="expected an \\(N, C, H, W\\)"):
        data.random_flip(KEY, x[0])
