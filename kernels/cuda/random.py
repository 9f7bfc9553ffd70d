"""Philox4x64-10 on the device, word for word NumPy's ``np.random.Philox`` stream, and the
conversions of those words that ``lucid.random`` makes on the host (uniform floats,
Bernoulli, integers, normals, keys).

NumPy's Philox, seeded with ``key=[k0, k1]`` (counter 0), increments its 256-bit counter
*before* each 4-word block, so raw word ``i`` is word ``i % 4`` of the block computed for
counter ``i // 4 + 1``. Every word is thus a pure function of (key, i): a thread computes
any block on its own, and a draw that starts at word ``start`` (a shard's rows of a
global draw) costs nothing extra.

The kernels read the lucid key (a uint32 ``(2,)`` device array) themselves, so no key
ever goes through the host. All 64-bit arithmetic is on uint64 values built with explicit
uint64 constants (Numba types ``uint64 op int64`` as float64), and the 64x64->128-bit
product is made from 32-bit halves: the same code lowers to PTX and runs in the
simulator, where it never overflows a NumPy scalar (which would warn).

Conversions match ``lucid/random.py`` exactly: float64 units are ``(w >> 11) * 2**-53``;
float32 units (normals) are ``(h >> 8) * 2**-24`` over the 32-bit halves of each word,
low half first; normals are Box-Muller in the output's precision (the device's log, sqrt,
cos and sin may differ from the host's in the last bits).
"""
import math

import numpy as np
from numba import cuda, float32, float64, int64, uint64

from ._common import launch

_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S11 = np.uint64(11)
_S8 = np.uint64(8)
_ONE = np.uint64(1)
_FOUR = np.uint64(4)
_MUL0 = np.uint64(0xD2E7470EE14C6C93)
_MUL1 = np.uint64(0xCA5A826395121157)
_BUMP0 = np.uint64(0x9E3779B97F4A7C15)
_BUMP1 = np.uint64(0xBB67AE8584CAA73B)
_UNIT53 = 1.0 / (1 << 53)
_UNIT24 = np.float32(1.0 / (1 << 24))
_F32_ONE = np.float32(1.0)
_F32_MINUS_TWO = np.float32(-2.0)
_F32_TWO_PI = np.float32(2 * np.pi)   # what NumPy makes of ``u2 *= 2 * np.pi`` on float32
_TWO_PI = 2 * np.pi


@cuda.jit(device=True, inline=True)
def _mulhilo(a, b):
    """(high, low) 64-bit words of the 128-bit product a * b, from 32-bit halves."""
    a_lo = a & _M32
    a_hi = a >> _S32
    b_lo = b & _M32
    b_hi = b >> _S32
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    p3 = a_hi * b_hi
    mid = (p0 >> _S32) + (p1 & _M32) + (p2 & _M32)          # < 3 * 2**32: no overflow
    hi = p3 + (p1 >> _S32) + (p2 >> _S32) + (mid >> _S32)   # the true high word: no overflow
    lo = ((mid & _M32) << _S32) | (p0 & _M32)
    return hi, lo


@cuda.jit(device=True, inline=True)
def _add(a, b):
    """a + b modulo 2**64, without overflowing a uint64 (the simulator's NumPy scalars warn)."""
    lo = (a & _M32) + (b & _M32)
    hi = (a >> _S32) + (b >> _S32) + (lo >> _S32)
    return ((hi & _M32) << _S32) | (lo & _M32)


@cuda.jit(device=True, inline=True)
def philox_block(c0, k0, k1):
    """Philox4x64-10 of the counter (c0, 0, 0, 0) under key (k0, k1): four uint64 words."""
    x0 = c0
    x1 = uint64(0)
    x2 = uint64(0)
    x3 = uint64(0)
    for r in range(10):
        if r > 0:
            k0 = _add(k0, _BUMP0)
            k1 = _add(k1, _BUMP1)
        hi0, lo0 = _mulhilo(_MUL0, x0)
        hi1, lo1 = _mulhilo(_MUL1, x2)
        x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
    return x0, x1, x2, x3


@cuda.jit(device=True, inline=True)
def _key64(key):
    """The lucid key (uint32 pair, high word first) as NumPy's first Philox key word."""
    return (uint64(key[0]) << _S32) | uint64(key[1])


@cuda.jit(device=True, inline=True)
def _pick(w0, w1, w2, w3, j):
    """Word j (0..3) of a block."""
    if j == 0:
        return w0
    if j == 1:
        return w1
    if j == 2:
        return w2
    return w3


@cuda.jit(device=True, inline=True)
def philox_word(k0, k1, i):
    """Raw word ``i`` (0-based) of NumPy's stream for Philox(key=[k0, k1])."""
    w0, w1, w2, w3 = philox_block(i // _FOUR + _ONE, k0, k1)
    return _pick(w0, w1, w2, w3, i % _FOUR)


@cuda.jit(device=True, inline=True)
def _unit53(w):
    return float64(w >> _S11) * _UNIT53


@cuda.jit(device=True, inline=True)
def _unit24(w, half):
    """float32 uniform from the low (half 0) or high (half 1) 32 bits of word w."""
    h = (w & _M32) if half == 0 else (w >> _S32)
    return float32(h >> _S8) * _UNIT24


# ---------------------------------------------------------------- kernels (grid-stride)

@cuda.jit
def _keys(key, k1, out):
    """out (num, 2) uint32: key n is raw word n split into its high and low 32 bits."""
    k0 = _key64(key)
    for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        w = philox_word(k0, k1, uint64(i))
        out[i, 0] = w >> _S32
        out[i, 1] = w & _M32


# Draws of one word per element walk whole Philox blocks (grid-stride over blocks): each
# block's four words serve four elements, a quarter of the integer work of one block per
# element. Elements i cover words start + i, so blocks start // 4 .. (start + n - 1) // 4.

def _block_count(start, n):
    return (start + n + 3) // 4 - start // 4


@cuda.jit
def _words(key, k1, start, out):
    """out[i] = raw word start + i (uint64)."""
    k0 = _key64(key)
    n = out.size
    for b in range(start // 4 + cuda.grid(1), (start + n + 3) // 4, cuda.gridsize(1)):
        w0, w1, w2, w3 = philox_block(uint64(b) + _ONE, k0, k1)
        for j in range(4):
            i = 4 * b + j - start
            if 0 <= i < n:
                out[i] = _pick(w0, w1, w2, w3, j)


@cuda.jit
def _uniform(key, k1, start, minval, scale, out):
    """out[i] = minval + scale * unit53(word start + i), rounded to out's dtype."""
    k0 = _key64(key)
    n = out.size
    for b in range(start // 4 + cuda.grid(1), (start + n + 3) // 4, cuda.gridsize(1)):
        w0, w1, w2, w3 = philox_block(uint64(b) + _ONE, k0, k1)
        for j in range(4):
            i = 4 * b + j - start
            if 0 <= i < n:
                out[i] = minval + scale * _unit53(_pick(w0, w1, w2, w3, j))


@cuda.jit
def _bernoulli(key, k1, start, p, out):
    """out[i] = unit53(word start + i) < p (bool)."""
    k0 = _key64(key)
    n = out.size
    for b in range(start // 4 + cuda.grid(1), (start + n + 3) // 4, cuda.gridsize(1)):
        w0, w1, w2, w3 = philox_block(uint64(b) + _ONE, k0, k1)
        for j in range(4):
            i = 4 * b + j - start
            if 0 <= i < n:
                out[i] = _unit53(_pick(w0, w1, w2, w3, j)) < p


@cuda.jit
def _randint(key, k1, minval, span, out):
    """out[i] = int64(minval + floor(unit53(word i) * span)), in float64 as on the host."""
    k0 = _key64(key)
    n = out.size
    for b in range(cuda.grid(1), (n + 3) // 4, cuda.gridsize(1)):
        w0, w1, w2, w3 = philox_block(uint64(b) + _ONE, k0, k1)
        for j in range(4):
            i = 4 * b + j
            if i < n:
                u = _unit53(_pick(w0, w1, w2, w3, j))
                out[i] = int64(minval + math.floor(u * span))


@cuda.jit
def _normal64(key, k1, m, out):
    """Box-Muller over 2m float64 units: out[i] = r_i cos(2 pi v_i), out[m + i] = r_i sin(..)."""
    k0 = _key64(key)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        pair = i if i < m else i - m
        u1 = 1.0 - _unit53(philox_word(k0, k1, uint64(pair)))
        u2 = _unit53(philox_word(k0, k1, uint64(pair + m))) * _TWO_PI
        r = math.sqrt(math.log(u1) * -2.0)
        out[i] = (math.cos(u2) if i < m else math.sin(u2)) * r


@cuda.jit(device=True, inline=True)
def _unit24_at(k0, k1, e):
    """float32 unit number e: half e % 2 of raw word e // 2."""
    return _unit24(philox_word(k0, k1, uint64(e // 2)), e % 2)


@cuda.jit
def _normal32(key, k1, m, out):
    """Box-Muller in float32 over 2m float32 units (half-words), as ``_normal64``."""
    k0 = _key64(key)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        pair = i if i < m else i - m
        u1 = float32(_F32_ONE - _unit24_at(k0, k1, pair))
        u2 = float32(_unit24_at(k0, k1, pair + m) * _F32_TWO_PI)
        r = float32(math.sqrt(float32(float32(math.log(u1)) * _F32_MINUS_TWO)))
        trig = float32(math.cos(u2)) if i < m else float32(math.sin(u2))
        out[i] = float32(trig * r)


# ---------------------------------------------------------------- launchers

def words(key, k1, start, out):
    """Raw uint64 words ``start .. start + out.size`` of Philox(key=[key64, k1]) into out.

    Args:
      key: uint32 (2,) device array (a lucid key).
      k1: the second Philox key word (np.uint64: domain << 32 | data).
      start: the first word's index (int).
      out: uint64 flat device array.
    """
    launch(_words, _block_count(start, out.size), key, np.uint64(k1), np.int64(start), out)


def keys(key, k1, out):
    """``out.shape[0]`` new keys (uint32 (num, 2)) from words 0.. of Philox(key, k1)."""
    launch(_keys, out.shape[0], key, np.uint64(k1), out)


def uniform(key, k1, start, minval, scale, out):
    """Flat float32/float64 ``out`` = minval + scale * unit (53-bit units, float64 math)."""
    launch(_uniform, _block_count(start, out.size), key, np.uint64(k1), np.int64(start),
           np.float64(minval), np.float64(scale), out)


def bernoulli(key, k1, start, p, out):
    """Flat bool ``out`` = unit < p, units from words ``start ..``."""
    launch(_bernoulli, _block_count(start, out.size), key, np.uint64(k1), np.int64(start),
           np.float64(p), out)


def randint(key, k1, minval, span, out):
    """Flat int64 ``out`` = minval + floor(unit * span) (float64 math, as the host)."""
    launch(_randint, _block_count(0, out.size), key, np.uint64(k1), np.float64(minval),
           np.float64(span), out)


def normal(key, k1, out):
    """Flat float32/float64 ``out`` of standard normals (Box-Muller in out's precision)."""
    m = (out.size + 1) // 2
    kernel = _normal32 if out.dtype == np.float32 else _normal64
    launch(kernel, out.size, key, np.uint64(k1), np.int64(m), out)
