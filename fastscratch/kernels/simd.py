"""The one inner loop of every dense kernel, written with explicit vector registers, and its plain twin.

``combine_rows(out, o, M, rows, values, positions, start, stop)`` overwrites
row o of out with ``sum_c v_c * M[rows[c]]`` over ``c = start .. stop - 1``,
where ``v_c = values.flat[c]``, or ``values.flat[positions[c]]`` when
positions is an index array, not None; rows None means ``rows[c] = c -
start``. That one operation is the forward pass of a row (M = W, rows = the
input's nonzero columns), the weight gradient of an input column (M = dL/dz,
rows = the batch rows where that input is nonzero) and the input gradient of
a row (M = W.T). ``add_rows`` (same arguments) adds that sum to the row
instead: the forward pass sums each block of ``BLOCK`` inputs on its own and
adds it to the row (``dense_forward``). ``update_rows(..., scale)`` adds
``scale * sum`` to the row, straight from the registers, and returns whether
the row stayed finite: the SGD step of a row of W.

The order of each sum, the same at every width and in the plain twins: the
terms in ascending c, each added with one fused multiply-add
(``s = fma(v_c, M[rows[c], j], s)``, rounded once) to a sum that starts at
+0. ``add_rows`` then rounds ``out[o, j] + s`` once more; ``update_rows``
rounds ``scale * s`` and then ``out[o, j] + scale * s``, as the reference's
``W -= lr * dW`` does. A sum that starts at +0 is never -0, so adding a zero
term (``fma(0, w, s)`` with w finite) leaves it as it is: a walk that skips
zero inputs gives the bits of one that visits them. docs/numerics.md has the
whole contract.

Why an intrinsic: written as Numba loops (``plain_combine_rows``), a row of
``out`` goes through memory on every term (loads and stores bound the loop),
and LLVM does not turn scalar accumulators into vectors. Here the columns are
cut into tiles of up to ``config.TILE_VECTORS`` vectors of ``VECTOR_BITS``, each
tile's sums stay in registers for the whole walk over the terms, and each
row of M is read as vectors once per tile; the leftover columns go as smaller
tiles, then as one vector whose unused lanes are masked off (never read or
written). Each lane is its own chain of fused multiply-adds (``llvm.fma``:
the instruction on CPUs with FMA3, libm's correctly rounded ``fma`` on the
``generic`` target), so every width gives the bits of the plain twins, which
call the same ``llvm.fma`` one element at a time (``fma.multiply_add``).

The width follows Numba's CPU target, which ``NUMBA_CPU_NAME`` and
``NUMBA_CPU_FEATURES`` set (``generic`` for a portable cache): 512 bits with
AVX-512F, 256 with AVX, 128 otherwise (SSE2, NEON; LLVM lowers 128-bit
vectors on any target). ``FASTSCRATCH_SIMD`` (``config.SIMD``) can ask for a
narrower width, or ``plain`` for the twins; under ``NUMBA_DISABLE_JIT`` the
twins are the only choice, since an intrinsic cannot run as Python, and they
round ``v * m + s`` twice there (``fma.multiply_add``): the same sums within
a tolerance, not to the bit.
"""
import functools
import warnings
from typing import NamedTuple

from llvmlite import binding, ir
import numba
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fastscratch import config
from fastscratch.kernel_cache import jit
from fastscratch.kernels.fma import multiply_add

WIDTHS = (128, 256, 512)
#: The forward pass sums a row's inputs in blocks of this many consecutive inputs (0 .. BLOCK - 1, BLOCK ..
#: 2 * BLOCK - 1, ...), each block's sum started at +0 in registers, then added to the row's (``add_rows``).
#: The first layer walks a batch a block at a time, so that a block's rows of W are read from L2 once per
#: batch (``dense_forward.chunked_forward``); every other forward pass (evaluation, ``predict``, per-call
#: ``forward``) sums in the same blocks, so an image's outputs never depend on the rows it came with. Part
#: of the bits: one value for every CPU.
BLOCK = 64


def cpu_target():
    """The CPU name and the set of enabled features Numba compiles for.

    As Numba's own target machine sees them: ``NUMBA_CPU_NAME`` and
    ``NUMBA_CPU_FEATURES`` when set (``generic`` alone means no features),
    else the host's, with AVX removed where ``NUMBA_ENABLE_AVX`` is off.
    """
    try:
        from numba.core.codegen import get_host_cpu_features
    except ImportError:  # a Numba that moved it: the same question, asked of LLVM
        def get_host_cpu_features():
            return binding.get_host_cpu_features().flatten()
    name = numba.config.CPU_NAME or binding.get_host_cpu_name()
    features = numba.config.CPU_FEATURES if numba.config.CPU_FEATURES is not None else get_host_cpu_features()
    return name, {feature[1:] for feature in features.split(",") if feature.startswith("+")}


def widest_vector_bits(features):
    """The widest vector (in bits) the CPU features give floating-point arithmetic."""
    if "avx512f" in features:
        return 512
    if "avx" in features:
        return 256
    return 128


def choose_vector_bits(setting, features, disable_jit=False):
    """The vector width for ``FASTSCRATCH_SIMD=setting`` on a CPU with these features; 0 for the plain twins.

    A width the CPU lacks warns and falls back to the widest it has: LLVM
    would split such vectors into pieces, the same bits, only slower.
    """
    if disable_jit or setting == "plain":
        return 0
    widest = widest_vector_bits(features)
    if setting == "auto":
        return widest
    bits = int(setting)
    if bits > widest:
        warnings.warn(f"FASTSCRATCH_SIMD={setting}: Numba's CPU target has no {bits}-bit vectors; using {widest}-bit "
                      f"(set NUMBA_CPU_NAME/NUMBA_CPU_FEATURES to target another CPU)", RuntimeWarning, stacklevel=2)
        return widest
    return bits


def _c_array(arr, ndim=None, dtype=types.Float):
    return (isinstance(arr, types.Array) and arr.layout == "C" and (ndim is None or arr.ndim == ndim)
            and isinstance(arr.dtype, dtype))


def _pair_typed(out, o, M, values, start, stop, stride):
    return _typed(out, o, M, types.none, values, types.none, start, stop) and isinstance(stride, types.Integer)


def _typed(out, o, M, rows, values, positions, start, stop):
    return (_c_array(out, 2) and _c_array(M, 2) and _c_array(values)
            and all(t is types.none or _c_array(t, 1, types.Integer) for t in (rows, positions))
            and out.dtype == M.dtype == values.dtype
            and all(isinstance(t, types.Integer) for t in (o, start, stop)))


class RowKernels(NamedTuple):
    """The kernels at one width (or the plain twins)."""
    combine_rows: object
    update_rows: object
    add_rows: object
    combine_row_pair: object
    add_row_pair: object
    update_row_pair: object


@functools.cache
def vector_kernels(bits, tile_vectors):
    """The ``RowKernels`` intrinsics with vectors of ``bits`` and tiles of up to ``tile_vectors``.

    Every width runs on every CPU (LLVM splits vectors wider than the
    registers) and gives the same bits; the widest the CPU has is fastest.
    """
    @intrinsic
    def combine_rows(typingctx, out, o, M, rows, values, positions, start, stop):
        """``out[o, :] = sum(v_c * M[rows[c], :out.shape[1]] for c in range(start, stop))``; see the module docstring.

        out (n, m), M (k, >= m) and values (any shape) are C-contiguous
        arrays of one float dtype; rows and positions 1-D integer arrays or
        None. Nothing is checked: indices must be in bounds.
        """
        if not _typed(out, o, M, rows, values, positions, start, stop):
            return None
        return (types.void(out, o, M, rows, values, positions, start, stop),
                _codegen(bits, tile_vectors, "combine"))

    @intrinsic
    def update_rows(typingctx, out, o, M, rows, values, positions, start, stop, scale):
        """``out[o, :] += scale * sum(...)`` with the sum of ``combine_rows``; return whether ``out[o]`` is finite.

        scale has the arrays' dtype. ``W - lr * g`` and ``W + (-lr) * g`` are
        the same bits. An entry counts as finite when ``entry * 0`` is 0 (not
        NaN), tested in the registers on the values stored, lane masks OR'd
        over the row.
        """
        if not (_typed(out, o, M, rows, values, positions, start, stop) and scale == M.dtype):
            return None
        return (types.boolean(out, o, M, rows, values, positions, start, stop, scale),
                _codegen(bits, tile_vectors, "update"))

    @intrinsic
    def add_rows(typingctx, out, o, M, rows, values, positions, start, stop):
        """``out[o, :] += sum(...)`` with the sum of ``combine_rows``: ``out[o] + s``, s summed from +0 in registers.

        Summing a range in consecutive pieces, the first by ``combine_rows``,
        the others by this, gives each piece's sum added to the row in turn.
        """
        if not _typed(out, o, M, rows, values, positions, start, stop):
            return None
        return (types.void(out, o, M, rows, values, positions, start, stop),
                _codegen(bits, tile_vectors, "add"))

    @intrinsic
    def combine_row_pair(typingctx, out, o, M, values, start, stop, stride):
        """``combine_rows`` of two rows of a dense input at once: rows o and o + 1 of out, their terms
        ``values.flat[start .. stop - 1]`` and ``values.flat[start + stride .. stop + stride - 1]``, both times rows
        0 .. stop - start - 1 of M. Each row of M is read once for both, and the two rows' sums are independent
        chains in the registers: the bits of two ``combine_rows`` calls."""
        if not _pair_typed(out, o, M, values, start, stop, stride):
            return None
        return (types.void(out, o, M, values, start, stop, stride),
                _codegen(bits, max(tile_vectors // 2, 1), "combine", pair=True))

    @intrinsic
    def add_row_pair(typingctx, out, o, M, values, start, stop, stride):
        """``add_rows`` of two rows of a dense input at once, as ``combine_row_pair``."""
        if not _pair_typed(out, o, M, values, start, stop, stride):
            return None
        return (types.void(out, o, M, values, start, stop, stride),
                _codegen(bits, max(tile_vectors // 2, 1), "add", pair=True))

    @intrinsic
    def update_row_pair(typingctx, out, o, M, values, start, stop, stride, scale):
        """``update_rows`` of two rows at once (rows o and o + 1 of out), their terms as in ``combine_row_pair``;
        returns whether both stayed finite."""
        if not (_pair_typed(out, o, M, values, start, stop, stride) and scale == M.dtype):
            return None
        return (types.boolean(out, o, M, values, start, stop, stride, scale),
                _codegen(bits, max(tile_vectors // 2, 1), "update", pair=True))

    return RowKernels(combine_rows, update_rows, add_rows, combine_row_pair, add_row_pair, update_row_pair)


@jit
def plain_combine_rows(out, o, M, rows, values, positions, start, stop):
    """``combine_rows`` as a plain loop, the sums kept in ``out[o]``: the same bits."""
    flat = values.reshape(values.size)
    width = out.shape[1]
    zero = out.dtype.type(0)
    for j in range(width):
        out[o, j] = zero
    for c in range(start, stop):
        v = flat[c] if positions is None else flat[positions[c]]
        m = c - start if rows is None else rows[c]
        for j in range(width):
            out[o, j] = multiply_add(v, M[m, j], out[o, j])


@jit
def plain_add_rows(out, o, M, rows, values, positions, start, stop):
    """``add_rows`` as a plain loop, one column at a time: the same bits."""
    flat = values.reshape(values.size)
    zero = out.dtype.type(0)
    for j in range(out.shape[1]):
        total = zero
        for c in range(start, stop):
            v = flat[c] if positions is None else flat[positions[c]]
            total = multiply_add(v, M[c - start if rows is None else rows[c], j], total)
        out[o, j] += total


@jit
def plain_combine_row_pair(out, o, M, values, start, stop, stride):
    """``combine_row_pair`` as two ``plain_combine_rows``: the same bits."""
    plain_combine_rows(out, o, M, None, values, None, start, stop)
    plain_combine_rows(out, o + 1, M, None, values, None, start + stride, stop + stride)


@jit
def plain_add_row_pair(out, o, M, values, start, stop, stride):
    """``add_row_pair`` as two ``plain_add_rows``: the same bits."""
    plain_add_rows(out, o, M, None, values, None, start, stop)
    plain_add_rows(out, o + 1, M, None, values, None, start + stride, stop + stride)


@jit
def plain_update_row_pair(out, o, M, values, start, stop, stride, scale):
    """``update_row_pair`` as two ``plain_update_rows``: the same bits, and the same answer."""
    first = plain_update_rows(out, o, M, None, values, None, start, stop, scale)
    second = plain_update_rows(out, o + 1, M, None, values, None, start + stride, stop + stride, scale)
    return first and second


@jit
def plain_update_rows(out, o, M, rows, values, positions, start, stop, scale):
    """``update_rows`` as a plain loop, one column at a time: the same bits, and the same answer."""
    flat = values.reshape(values.size)
    zero = out.dtype.type(0)
    finite = True
    for j in range(out.shape[1]):
        total = zero
        for c in range(start, stop):
            v = flat[c] if positions is None else flat[positions[c]]
            total = multiply_add(v, M[c - start if rows is None else rows[c], j], total)
        result = out[o, j] + scale * total
        if result * zero != zero:  # an if, not ``finite and ...``: a Python bool also when run as Python
            finite = False
        out[o, j] = result
    return finite


def _codegen(bits, tile_vectors, mode, pair=False):
    """The code of ``combine_rows`` (mode "combine"), ``add_rows`` ("add") or ``update_rows``
    ("update") with vectors of ``bits``, tiles of up to ``tile_vectors``; with ``pair``, of
    ``combine_row_pair`` or ``add_row_pair``."""
    def codegen(context, builder, sig, args):
        if pair:  # (out, o, M, values, start, stop, stride[, scale]): a walk without index arrays, and the second row
            out, o, M, values, start, stop, stride = sig.args[:7]
            walk = _walk(context, builder, types.void(out, o, M, types.none, values, types.none, start, stop),
                         (*args[:3], None, args[3], None, *args[4:6]), bits)
            walk = walk._replace(stride=context.cast(builder, args[6], stride, types.intp),
                                 out_row2=builder.gep(walk.out_row, [walk.width]))
            scale = args[7] if mode == "update" else None
        else:
            walk = _walk(context, builder, sig, args, bits)
            scale = args[8] if mode == "update" else None
        flags = _Flags(mode, scale,
                       cgutils.alloca_once_value(builder, ir.Constant(walk.vector, None)) if mode == "update" else None)
        walk = walk._replace(**_vector_functions(walk))
        _all_columns(walk, flags, tile_vectors)
        if mode == "update":  # no lane NaN ("uno": unordered with itself): the lanes as the bits of one integer
            check = builder.load(flags.non_finite)
            lanes_bits = builder.bitcast(builder.fcmp_unordered("uno", check, check), ir.IntType(walk.lanes))
            return builder.icmp_unsigned("==", lanes_bits, ir.Constant(ir.IntType(walk.lanes), 0))
        return context.get_dummy_value()
    return codegen


class _Walk(NamedTuple):
    """What the generated code of one call reads: the LLVM builder, the vector type, the arguments as LLVM
    values (row o of out as a pointer, M's data and row length, the index arrays' data and Numba types, the
    range of terms), and the LLVM functions it calls (filled in by ``_vector_functions``)."""
    context: object
    builder: object
    bits: int
    lanes: int
    align: int
    vector: object
    mask_type: object
    width: object
    out_row: object
    M_data: object
    M_width: object
    M_rows: object
    rows: object
    rows_type: object
    values: object
    positions: object
    positions_type: object
    start: object
    stop: object
    count: object
    prefetch: object = None
    masked_load: object = None
    masked_store: object = None
    fma: object = None
    large: object = None
    stride: object = None  # a pair's: where the second row's terms are, from the first's
    out_row2: object = None


class _Flags(NamedTuple):
    """What a mode adds to the stores: mode, the update's scale (an LLVM value) and the alloca of its check: a
    vector that turns NaN in the lanes where a stored value was inf or NaN."""
    mode: str
    scale: object
    non_finite: object


_I32 = ir.IntType(32)


def _walk(context, builder, sig, args, bits):
    """The ``_Walk`` of a call of a kernel with signature sig and LLVM arguments args."""
    out, o, M, rows, values, positions, start, stop = sig.args[:8]
    lanes = bits // M.dtype.bitwidth
    out_v, o_v, M_v, rows_v, values_v, positions_v, start_v, stop_v = args[:8]
    o_v, start_v, stop_v = (context.cast(builder, v, t, types.intp)
                            for v, t in ((o_v, o), (start_v, start), (stop_v, stop)))
    element = context.get_value_type(M.dtype)
    out_a = context.make_array(out)(context, builder, out_v)
    M_a = context.make_array(M)(context, builder, M_v)
    width = cgutils.unpack_tuple(builder, out_a.shape, 2)[1]
    M_width = cgutils.unpack_tuple(builder, M_a.shape, 2)[1]
    out_row = builder.gep(out_a.data, [builder.mul(o_v, width)])
    rows_data, values_data, positions_data = (
        None if ty is types.none else context.make_array(ty)(context, builder, value).data
        for ty, value in ((rows, rows_v), (values, values_v), (positions, positions_v)))
    count = builder.sub(stop_v, start_v)
    return _Walk(context, builder, bits, lanes, M.dtype.bitwidth // 8, ir.VectorType(element, lanes),
                 ir.VectorType(ir.IntType(1), lanes), width, out_row, M_a.data, M_width,
                 cgutils.unpack_tuple(builder, M_a.shape, 2)[0], rows_data, rows, values_data, positions_data,
                 positions, start_v, stop_v, count)


def _vector_functions(walk):
    """The LLVM functions the walk calls, and whether M is large enough to prefetch its rows, as ``_Walk`` fields."""
    builder, vector, mask_type = walk.builder, walk.vector, walk.mask_type
    prefetch = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
        ir.VoidType(), [ir.IntType(8).as_pointer(), _I32, _I32, _I32]), "llvm.prefetch")
    suffix = f"v{walk.lanes}f{walk.align * 8}.p0"
    masked_load = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
        vector, [vector.as_pointer(), _I32, mask_type, vector]), "llvm.masked.load." + suffix)
    masked_store = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
        ir.VoidType(), [vector, vector.as_pointer(), _I32, mask_type]), "llvm.masked.store." + suffix)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3),
                                         f"llvm.fma.v{walk.lanes}f{walk.align * 8}")
    M_bytes = builder.mul(builder.mul(walk.M_rows, walk.M_width), ir.Constant(cgutils.intp_t, walk.align))
    large = builder.icmp_signed(">", M_bytes, ir.Constant(cgutils.intp_t, config.PREFETCH_ABOVE_BYTES))
    return dict(prefetch=prefetch, masked_load=masked_load, masked_store=masked_store, fma=fma, large=large)


def _all_columns(walk, flags, tile_vectors):
    """Every column of the row: whole tiles, then at most one tile of each smaller power of two (they add up
    to any remainder of whole vectors), then the last columns, fewer than a vector, as one masked vector."""
    builder, intp = walk.builder, cgutils.intp_t
    step = ir.Constant(intp, tile_vectors * walk.lanes)
    full_tiles = builder.sdiv(walk.width, step)
    with cgutils.for_range(builder, full_tiles) as loop:
        _tile(walk, flags, builder.mul(loop.index, step), tile_vectors, tile_vectors)
    column = cgutils.alloca_once_value(builder, builder.mul(full_tiles, step))
    num_vectors = 1 << ((tile_vectors - 1).bit_length() - 1)
    while num_vectors:
        done = builder.load(column)
        end = builder.add(done, ir.Constant(intp, num_vectors * walk.lanes))
        with builder.if_then(builder.icmp_signed("<=", end, walk.width)):
            _tile(walk, flags, done, num_vectors, tile_vectors)
            builder.store(end, column)
        num_vectors //= 2
    done = builder.load(column)
    with builder.if_then(builder.icmp_signed("<", done, walk.width)):
        lane_type = ir.VectorType(_I32, walk.lanes)  # lane numbers in 32 bits: the compare is as wide as the data
        remaining = _broadcast(builder, builder.trunc(builder.sub(walk.width, done), _I32), lane_type)
        _tile(walk, flags, done, 1, tile_vectors,
              builder.icmp_signed("<", ir.Constant(lane_type, list(range(walk.lanes))), remaining))


def _tile(walk, flags, column, num_vectors, tile_vectors, mask=None):
    """Columns column .. column + num_vectors * lanes (the lanes of mask, if given): sum in registers from +0,
    then store (or add to the row, or update it)."""
    builder, vector = walk.builder, walk.vector
    sums = [cgutils.alloca_once_value(builder, ir.Constant(vector, None)) for _ in range(num_vectors)]
    sums2 = ([cgutils.alloca_once_value(builder, ir.Constant(vector, None)) for _ in range(num_vectors)]
             if walk.stride is not None else [])
    tile_bytes = num_vectors * walk.bits // 8
    if (walk.rows is None or mask is not None or flags.mode == "add"
            or (num_vectors < tile_vectors and tile_bytes < config.PREFETCH_TILE_BYTES)):
        _terms(walk, column, sums, sums2, mask, False)
    else:
        with builder.if_else(walk.large) as (then, otherwise):
            with then:
                _terms(walk, column, sums, sums2, mask, True)
            with otherwise:
                _terms(walk, column, sums, sums2, mask, False)
    for out_row, row_sums in ((walk.out_row, sums), (walk.out_row2, sums2)):
        _store_row(walk, flags, column, out_row, row_sums, mask)


def _store_row(walk, flags, column, out_row, sums, mask):
    """Store a tile's sums into the row at out_row (or add them to it, or update it)."""
    builder, vector, intp = walk.builder, walk.vector, cgutils.intp_t
    for v, total in enumerate(sums):
        at = builder.add(column, ir.Constant(intp, v * walk.lanes))
        result = builder.load(total)
        if flags.mode == "add":
            result = builder.fadd(_load(walk, builder.gep(out_row, [at]), mask), result)
        elif flags.mode == "update":
            result = builder.fadd(_load(walk, builder.gep(out_row, [at]), mask),
                                  builder.fmul(_broadcast(builder, flags.scale, vector), result))
            # result * 0 + check: NaN from where result is inf or NaN on, 0 while it is finite (one instruction).
            stored = result if mask is None else builder.select(mask, result, ir.Constant(vector, None))
            builder.store(builder.call(walk.fma, [stored, ir.Constant(vector, None), builder.load(flags.non_finite)]),
                          flags.non_finite)
        _store(walk, result, builder.gep(out_row, [at]), mask)


def _terms(walk, column, sums, sums2, mask, prefetching):
    """The loop over the terms: add each term times its row of M (the tile's columns) to the sums, one fused
    multiply-add each, requesting the row config.PREFETCH_DISTANCE terms ahead when prefetching; for a pair, the
    second row's term times the same row of M to sums2."""
    builder, intp = walk.builder, cgutils.intp_t
    with cgutils.for_range(builder, walk.count) as loop:
        c = builder.add(walk.start, loop.index)
        at = c if walk.positions is None else _index(walk, walk.positions, walk.positions_type, c)
        term = _broadcast(builder, builder.load(builder.gep(walk.values, [at])), walk.vector)
        term2 = None if walk.stride is None else _broadcast(
            builder, builder.load(builder.gep(walk.values, [builder.add(at, walk.stride)])), walk.vector)
        m = loop.index if walk.rows is None else _index(walk, walk.rows, walk.rows_type, c)
        row = builder.add(builder.mul(m, walk.M_width), column)
        if prefetching:
            ahead = builder.add(c, ir.Constant(intp, config.PREFETCH_DISTANCE))
            last = builder.sub(walk.stop, ir.Constant(intp, 1))
            ahead = builder.select(builder.icmp_signed("<", ahead, last), ahead, last)
            future = builder.add(builder.mul(_index(walk, walk.rows, walk.rows_type, ahead), walk.M_width), column)
            for line in range(0, len(sums) * walk.lanes, 64 // walk.align):
                pointer = builder.gep(walk.M_data, [builder.add(future, ir.Constant(intp, line))])
                flags = (0, 3, 1)  # a read, to keep in all cache levels, of data
                builder.call(walk.prefetch, [builder.bitcast(pointer, ir.IntType(8).as_pointer()),
                                             *(ir.Constant(_I32, flag) for flag in flags)])
        for v, total in enumerate(sums):
            entry = _load(walk, builder.gep(walk.M_data, [builder.add(row, ir.Constant(intp, v * walk.lanes))]), mask)
            builder.store(builder.call(walk.fma, [term, entry, builder.load(total)]), total)
            if term2 is not None:
                builder.store(builder.call(walk.fma, [term2, entry, builder.load(sums2[v])]), sums2[v])


def _index(walk, data, ty, c):
    """Entry c of an index array, as an intp."""
    return walk.context.cast(walk.builder, walk.builder.load(walk.builder.gep(data, [c])), ty.dtype, types.intp)


def _broadcast(builder, value, vector_type):
    """A vector of vector_type with value in every lane."""
    undefined = ir.Constant(vector_type, ir.Undefined)
    first = builder.insert_element(undefined, value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(first, undefined,
                                  ir.Constant(ir.VectorType(_I32, vector_type.count), [0] * vector_type.count))


def _load(walk, pointer, mask):
    """The vector at pointer; with a mask, only its lanes (the others 0)."""
    pointer = walk.builder.bitcast(pointer, walk.vector.as_pointer())
    if mask is None:
        return walk.builder.load(pointer, align=walk.align)
    return walk.builder.call(walk.masked_load, [pointer, ir.Constant(_I32, walk.align), mask,
                                                ir.Constant(walk.vector, None)])


def _store(walk, value, pointer, mask):
    """Store the vector value at pointer; with a mask, only its lanes."""
    pointer = walk.builder.bitcast(pointer, walk.vector.as_pointer())
    if mask is None:
        walk.builder.store(value, pointer, align=walk.align)
    else:
        walk.builder.call(walk.masked_store, [value, pointer, ir.Constant(_I32, walk.align), mask])


CPU_NAME, CPU_FEATURES = cpu_target()
#: The width every kernel uses (0: the plain twins), chosen once at import.
VECTOR_BITS = choose_vector_bits(config.SIMD, CPU_FEATURES, numba.config.DISABLE_JIT)
KERNELS = (vector_kernels(VECTOR_BITS, config.TILE_VECTORS[VECTOR_BITS]) if VECTOR_BITS
           else RowKernels(plain_combine_rows, plain_update_rows, plain_add_rows, plain_combine_row_pair,
                           plain_add_row_pair, plain_update_row_pair))
combine_rows, update_rows, add_rows, combine_row_pair, add_row_pair, update_row_pair = KERNELS
