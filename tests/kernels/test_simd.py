"""The row kernels (combine, add, update) at every vector width and their plain twins: the bits of the fused sums.

Each sum is held to ``oracle.fused_sum`` (from +0, in order, each term added
with one rounding, computed with an exact FMA over NumPy arrays), bit for bit
at every width and in the compiled plain twins. Each width is tested whatever
the CPU: LLVM splits vectors wider than the registers, which changes the
speed, not the bits. Under NUMBA_DISABLE_JIT only the plain twins exist, run
as Python, whose multiply-adds round twice: within ``oracle.RTOL`` there.
"""
import re

import numpy as np
import pytest
import numba
from numba import njit

from fastscratch import config
from fastscratch.kernels import simd
from oracle import assert_fused, fused_sum

JIT = not numba.config.DISABLE_JIT
needs_jit = pytest.mark.skipif(not JIT, reason="intrinsics exist only in compiled code")

#: (name, bits, tile vectors): the widths each CPU may use, and a tile that is not a power of two.
VECTOR_VARIANTS = ([(f"{bits}-bit", bits, config.TILE_VECTORS[bits]) for bits in simd.WIDTHS]
                   + [("512-bit x12", 512, 12)])
VARIANTS = ["plain"] + [pytest.param(name, marks=needs_jit) for name, _, _ in VECTOR_VARIANTS]


def wrappers(combine_rows, update_rows, add_rows):
    """Compiled callers of the three kernels (Numba's own njit: these test closures are not cached)."""
    @njit(**config.JIT_OPTIONS)
    def combine(out, o, M, rows, values, positions, start, stop):
        combine_rows(out, o, M, rows, values, positions, start, stop)

    @njit(**config.JIT_OPTIONS)
    def update(out, o, M, rows, values, positions, start, stop, scale):
        return update_rows(out, o, M, rows, values, positions, start, stop, scale)

    @njit(**config.JIT_OPTIONS)
    def add(out, o, M, rows, values, positions, start, stop):
        add_rows(out, o, M, rows, values, positions, start, stop)
    return combine, update, add


def pair_wrappers(combine_row_pair, add_row_pair, update_row_pair):
    """Compiled callers of the three pair kernels."""
    @njit(**config.JIT_OPTIONS)
    def combine(out, o, M, values, start, stop, stride):
        combine_row_pair(out, o, M, values, start, stop, stride)

    @njit(**config.JIT_OPTIONS)
    def add(out, o, M, values, start, stop, stride):
        add_row_pair(out, o, M, values, start, stop, stride)

    @njit(**config.JIT_OPTIONS)
    def update(out, o, M, values, start, stop, stride, scale):
        return update_row_pair(out, o, M, values, start, stop, stride, scale)
    return combine, add, update


PLAIN = wrappers(simd.plain_combine_rows, simd.plain_update_rows, simd.plain_add_rows)
KERNELS = {"plain": PLAIN}
PAIRS = {"plain": pair_wrappers(simd.plain_combine_row_pair, simd.plain_add_row_pair, simd.plain_update_row_pair)}
for _name, _bits, _tiles in VECTOR_VARIANTS if JIT else ():
    _kernels = simd.vector_kernels(_bits, _tiles)
    KERNELS[_name] = wrappers(*_kernels[:3])
    PAIRS[_name] = pair_wrappers(*_kernels[3:])
BITS = {name: (bits, tiles) for name, bits, tiles in VECTOR_VARIANTS}


def widths(variant, dtype):
    """Every mix of whole tiles, smaller tiles and a masked tail of each length, for the variant's lanes."""
    if variant == "plain":
        return sorted(set(range(1, 34)) | {200, 257})
    bits, tiles = BITS[variant]
    lanes = bits // (8 * np.dtype(dtype).itemsize)
    return sorted(set(range(1, 2 * tiles * lanes + 2)) | {200, 257})


def magnitude(M, rows, values, positions, start, stop, width):
    """The sum of the terms' absolute values: the scale of the Python twins' tolerance."""
    return fused_sum(np.abs(M), rows, np.abs(values), positions, start, stop, width)


def identical(a, b):
    """Equal bits, NaN payloads and the sign of zero included."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", VARIANTS)
def test_combination_is_the_fused_sum_at_every_width(variant, dtype, rng):
    combine = KERNELS[variant][0]
    for width in widths(variant, dtype):
        M = rng.standard_normal((11, width + 3)).astype(dtype)  # wider than out: only the first width columns count
        values = rng.standard_normal((5, 8)).astype(dtype)  # read flat
        for rows in (None, rng.integers(0, 11, 40).astype(np.int16)):
            for positions in (None, rng.integers(0, 40, 40)):
                start, stop = (3, 31) if rows is not None else (3, 14)
                out = np.full((3, width), 7, dtype=dtype)
                combine(out, 1, M, rows, values, positions, start, stop)
                assert_fused(out[1], fused_sum(M, rows, values, positions, start, stop, width), dtype,
                             magnitude(M, rows, values, positions, start, stop, width))
                assert (out[[0, 2]] == 7).all()  # other rows untouched
                if variant != "plain":
                    twin = np.full((3, width), 7, dtype=dtype)
                    PLAIN[0](twin, 1, M, rows, values, positions, start, stop)
                    assert identical(out, twin)


PIECES = ((9, 9), (9, 10), (10, 24), (24, 31))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", VARIANTS)
def test_adding_adds_each_pieces_own_fused_sum_to_the_row(variant, dtype, rng):
    """add_rows: the row plus the piece's sum, summed from +0 on its own (not continued from the row's values), at
    every width and tail; consecutive pieces (an empty one among them) add their sums in turn."""
    combine, _, add = KERNELS[variant]
    for width in widths(variant, dtype):
        M = rng.standard_normal((11, width + 3)).astype(dtype)
        values = rng.standard_normal(40).astype(dtype)
        rows = rng.integers(0, 11, 40).astype(np.int16)
        for positions in (None, rng.integers(0, 40, 40)):
            out = np.full((3, width), 7, dtype=dtype)
            combine(out, 1, M, rows, values, positions, 3, 9)
            expected = fused_sum(M, rows, values, positions, 3, 9, width)
            scale = magnitude(M, rows, values, positions, 3, 31, width)
            for start, stop in PIECES:
                add(out, 1, M, rows, values, positions, start, stop)
                expected = expected + fused_sum(M, rows, values, positions, start, stop, width)
                assert_fused(out[1], expected, dtype, scale)
            assert (out[[0, 2]] == 7).all()
            if variant != "plain":
                twin = np.full((3, width), 7, dtype=dtype)
                PLAIN[0](twin, 1, M, rows, values, positions, 3, 9)
                for start, stop in PIECES:
                    PLAIN[2](twin, 1, M, rows, values, positions, start, stop)
                assert identical(out, twin)


@pytest.mark.skipif(not JIT, reason="bits: compiled code only")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_sum_in_pieces_is_not_the_sum_continued(variant, dtype, rng):
    """The pieces' sums are rounded on their own, then added: another result than one walk over the whole range (a
    kernel that continued the row's sums would give the whole walk's bits)."""
    combine, _, add = KERNELS[variant]
    M = rng.standard_normal((40, 64)).astype(dtype)
    values = rng.standard_normal(40).astype(dtype)
    rows = np.arange(40)
    whole, pieces = np.empty((1, 64), dtype=dtype), np.empty((1, 64), dtype=dtype)
    combine(whole, 0, M, rows, values, None, 0, 40)
    combine(pieces, 0, M, rows, values, None, 0, 20)
    add(pieces, 0, M, rows, values, None, 20, 40)
    assert identical(whole[0], fused_sum(M, rows, values, None, 0, 40, 64))
    assert identical(pieces[0], fused_sum(M, rows, values, None, 0, 20, 64) + fused_sum(M, rows, values, None, 20,
                                                                                          40, 64))
    assert not identical(whole, pieces)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_pair_of_rows_gives_the_bits_of_two_single_rows(variant, dtype, rng):
    """combine_row_pair, add_row_pair and update_row_pair (rows o and o + 1, the second's terms ``stride`` on): the
    bits of combine_rows, add_rows and update_rows on each row, at every width and tail (the pairs' tiles are half
    as wide); update's answer too, with a non-finite entry in either row."""
    combine, update, add = KERNELS[variant]
    pair_combine, pair_add, pair_update = PAIRS[variant]
    lr = dtype(0.01)
    for width in widths(variant, dtype):
        M = rng.standard_normal((9, width + 2)).astype(dtype)
        values = rng.standard_normal(40).astype(dtype)
        start, stop, stride = 3, 12, 17
        for pair, single in ((pair_combine, combine), (pair_add, add)):
            out, expected = np.full((4, width), 7, dtype=dtype), np.full((4, width), 7, dtype=dtype)
            pair(out, 1, M, values, start, stop, stride)
            for r, shift in ((1, 0), (2, stride)):
                single(expected, r, M, None, values, None, start + shift, stop + shift)
            assert identical(out, expected), width
        W = rng.standard_normal((4, width)).astype(dtype)
        expected = W.copy()
        assert pair_update(W, 1, M, values, start, stop, stride, -lr) is True
        for r, shift in ((1, 0), (2, stride)):
            assert update(expected, r, M, None, values, None, start + shift, stop + shift, -lr) is True
        assert identical(W, expected)
        for bad_row in (1, 2):
            W = np.zeros((4, width), dtype=dtype)
            W[bad_row, width - 1] = np.inf
            with np.errstate(invalid="ignore"):
                assert pair_update(W, 1, M, values, start, stop, stride, -lr) is False


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", VARIANTS)
def test_update_is_the_sgd_step_of_the_row_at_every_width(variant, dtype, rng):
    update = KERNELS[variant][1]
    lr = dtype(0.01)
    for width in widths(variant, dtype):
        M = rng.standard_normal((9, width)).astype(dtype)
        values = rng.standard_normal(12).astype(dtype)
        for rows in (None, rng.integers(0, 9, 12)):
            for positions in (None, rng.permutation(12)):
                stop = 12 if rows is not None else 9
                W = rng.standard_normal((3, width)).astype(dtype)
                expected = W.copy()
                expected[2] = W[2] - lr * fused_sum(M, rows, values, positions, 0, stop, width)
                twin_W = W.copy()
                assert update(W, 2, M, rows, values, positions, 0, stop, -lr) is True
                assert_fused(W, expected, dtype, np.abs(W) + lr * magnitude(M, rows, values, positions, 0, stop, width))
                assert PLAIN[1](twin_W, 2, M, rows, values, positions, 0, stop, -lr) is True
                assert identical(W, twin_W)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", VARIANTS)
def test_update_says_whether_the_row_stayed_finite(variant, dtype):
    """Any one entry overflowing, or turning NaN, in any tile or the masked tail, makes the answer False;
    the masked-off lanes past the row (here: the next row's inf) never count."""
    big = np.finfo(dtype).max
    for width in (1, 3, 11, 40, 77, 130):
        M = np.ones((1, width), dtype=dtype)
        for bad in sorted({0, width // 2, width - 1}):
            for how in ("overflow", "nan"):
                W = np.zeros((2, width), dtype=dtype)
                W[1] = np.inf  # the row after: read by no lane
                W[0, bad] = -big if how == "overflow" else np.nan  # -big - big overflows to -inf
                with np.errstate(over="ignore", invalid="ignore"):
                    finite = KERNELS[variant][1](W, 0, M, np.zeros(1, np.int64), np.array([big], dtype=dtype), None,
                                                 0, 1, dtype(-1))
                assert finite is False, (width, bad, how)
        W = np.zeros((2, width), dtype=dtype)
        W[1] = np.inf
        assert KERNELS[variant][1](W, 0, M, np.zeros(1, np.int64), np.ones(1, dtype=dtype), None, 0, 1,
                                   dtype(-1)) is True


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("terms", [1, config.PREFETCH_DISTANCE, 3 * config.PREFETCH_DISTANCE])
def test_prefetching_walk_over_a_large_M_gives_the_same_bits(terms, variant, dtype, rng):
    """Past PREFETCH_ABOVE_BYTES the walk also requests rows ahead; the lookahead stops at the range's end,
    which here is the end of ``rows``. Widths: a masked tail, a small tile, a 256-byte tile, whole tiles."""
    for width in (7, 16, 64, 77, 256):
        num_rows = config.PREFETCH_ABOVE_BYTES // (width * np.dtype(dtype).itemsize) + 1
        M = rng.standard_normal((num_rows, width)).astype(dtype)
        assert M.nbytes > config.PREFETCH_ABOVE_BYTES
        rows = np.sort(rng.integers(0, num_rows, terms + 5))
        values = rng.standard_normal(terms + 5).astype(dtype)
        for add in (False, True):
            out = np.ones((1, width), dtype=dtype)
            KERNELS[variant][2 if add else 0](out, 0, M, rows, values, None, 5, terms + 5)
            expected = fused_sum(M, rows, values, None, 5, terms + 5, width) + dtype(1 if add else 0)
            assert_fused(out[0], expected, dtype, magnitude(M, rows, values, None, 5, terms + 5, width) + 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", VARIANTS)
def test_empty_range_gives_zeros(variant, dtype, rng):
    M = rng.standard_normal((6, 37)).astype(dtype)
    out = np.full((2, 37), np.nan, dtype=dtype)
    KERNELS[variant][0](out, 1, M, np.zeros(1, np.int64), rng.standard_normal(20).astype(dtype), None, 5, 5)
    assert identical(out[1], np.zeros(37, dtype=dtype)) and np.isnan(out[0]).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_non_finite_terms_propagate_as_in_numpy(variant, rng):
    M = rng.standard_normal((3, 41))
    M[1, 4] = np.inf
    M[2, 40] = np.nan
    values = np.array([1.0, 0.0, 2.0])
    out = np.empty((1, 41))
    with np.errstate(invalid="ignore"):
        KERNELS[variant][0](out, 0, M, np.arange(3), values, None, 0, 3)
        np.testing.assert_array_equal(out[0], fused_sum(M, np.arange(3), values, None, 0, 3, 41))
    assert np.isnan(out[0, 4]) and np.isnan(out[0, 40])  # 0 * inf, and NaN


@needs_jit
def test_refuses_non_contiguous_arrays():
    with pytest.raises(Exception, match="combine_rows|No implementation|Invalid use"):
        KERNELS["256-bit"][0](np.empty((2, 8))[:, ::2], 0, np.ones((3, 4)), None, np.ones(3), None, 0, 3)


@needs_jit
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bits", simd.WIDTHS)
def test_machine_code_keeps_the_width_and_fuses_every_term(bits, dtype):
    """On a CPU with the width, its registers do the arithmetic (LLVM could split the vectors in halves on
    CPUs tuned for narrower ones), each term with one fused multiply-add: no separate multiply in the sums
    (``update_rows`` multiplies once, by the scale, after them)."""
    combine, update, add = wrappers(*simd.vector_kernels(bits, config.TILE_VECTORS[bits])[:3])  # one signature each
    args = (np.zeros((2, 70), dtype), 0, np.ones((5, 70), dtype), np.arange(5), np.ones(5, dtype), None, 0, 5)
    combine(*args)
    update(*args, dtype(-1))
    add(*args)
    register = {128: "xmm", 256: "ymm", 512: "zmm"}[bits]
    op = "pd" if dtype == np.float64 else "ps"
    for kernel in (combine, update, add):
        asm = kernel.inspect_asm(kernel.signatures[0])
        if bits <= simd.widest_vector_bits(simd.CPU_FEATURES) and "fma" in simd.CPU_FEATURES:
            assert re.search(rf"\bvfmadd\d+{op}\s[^\n]*%{register}", asm), f"no fused {register} arithmetic"
        if kernel is not update:
            assert not re.search(rf"\bvmul{op}", asm)
        for wider in {128: ["ymm", "zmm"], 256: ["zmm"], 512: []}[bits]:  # never wider than asked
            assert not re.search(rf"\bv(mul|add|fmadd\d+){op}\s[^\n]*%{wider}", asm)


def test_width_follows_the_cpu_features():
    assert simd.widest_vector_bits({"avx512f", "avx2", "avx", "sse2"}) == 512
    assert simd.widest_vector_bits({"avx2", "avx", "fma"}) == 256
    assert simd.widest_vector_bits({"avx"}) == 256
    assert simd.widest_vector_bits({"sse4.2", "sse2"}) == 128
    assert simd.widest_vector_bits({"neon"}) == 128
    assert simd.widest_vector_bits(set()) == 128


def test_setting_chooses_the_width_or_warns_and_falls_back():
    avx2 = {"avx", "avx2"}
    assert simd.choose_vector_bits("auto", avx2) == 256
    assert simd.choose_vector_bits("128", avx2) == 128
    assert simd.choose_vector_bits("plain", avx2) == 0
    assert simd.choose_vector_bits("auto", avx2, disable_jit=True) == 0
    with pytest.warns(RuntimeWarning, match="FASTSCRATCH_SIMD=512: .*no 512-bit vectors; using 256-bit"):
        assert simd.choose_vector_bits("512", avx2) == 256


def test_the_module_uses_the_chosen_width():
    if simd.VECTOR_BITS == 0:
        assert simd.KERNELS == (simd.plain_combine_rows, simd.plain_update_rows, simd.plain_add_rows,
                                simd.plain_combine_row_pair, simd.plain_add_row_pair, simd.plain_update_row_pair)
    else:
        assert simd.KERNELS == simd.vector_kernels(simd.VECTOR_BITS, config.TILE_VECTORS[simd.VECTOR_BITS])
    assert (simd.combine_rows, simd.update_rows, simd.add_rows, simd.combine_row_pair, simd.add_row_pair,
            simd.update_row_pair) == simd.KERNELS
