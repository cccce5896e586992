"""The one inner loop of every dense kernel, written with explicit vector registers, and its plain twin.

``combine_rows(out, o, M, rows, values, positions, start, stop)`` overwrites
row o of out with ``sum_c v_c * M[rows[c]]`` over ``c = start .. stop - 1``,
in ascending order, where ``v_c = values.flat[c]``, or
``values.flat[positions[c]]`` when positions is an index array, not None;
rows None means ``rows[c] = c - start``. That one operation is the forward
pass of a row (M = W, rows = the input's nonzero columns), the weight
gradient of an input column (M = dL/dz, rows = the batch rows where that
input is nonzero) and the input gradient of a row (M = W.T).
``update_rows(..., scale)`` adds ``scale * sum`` to the row instead,
straight from the registers, and returns whether the row stayed finite: the
SGD step of a row of W.

Why an intrinsic: written as Numba loops (``plain_combine_rows``), a row of
``out`` goes through memory on every term (loads and stores bound the loop),
and LLVM does not turn scalar accumulators into vectors. Here the columns are
cut into tiles of up to ``TILE_VECTORS`` vectors of ``VECTOR_BITS``, each
tile's sums stay in registers for the whole walk over the terms, and each
row of M is read as vectors once per tile; the leftover columns go as smaller
tiles, then as one vector whose unused lanes are masked off (never read or
written). Each column is still summed term by term in order with a separate
multiply and add (no FMA), so every width gives the naive loop's bits, and so
do the plain twins.

The width follows Numba's CPU target, which ``NUMBA_CPU_NAME`` and
``NUMBA_CPU_FEATURES`` set (``generic`` for a portable cache): 512 bits with
AVX-512F, 256 with AVX, 128 otherwise (SSE2, NEON; LLVM lowers 128-bit
vectors on any target). ``FASTSCRATCH_SIMD`` (``_config.SIMD``) can ask for a
narrower width, or ``plain`` for the twins; under ``NUMBA_DISABLE_JIT`` the
twins are the only choice, since an intrinsic cannot run as Python.
"""
import functools
import warnings

from llvmlite import binding, ir
from numba import config, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastscratch import _config
from fastscratch._config import jit

WIDTHS = (128, 256, 512)
#: Vector accumulators per tile, by width. AVX2 and SSE have 16 vector
#: registers: 8 sums, the broadcast term and the products fit without
#: spilling. AVX-512 has 32, but 8, 12 and 16 sums were within noise of each
#: other here on layers 128 to 1024 wide, and larger tiles are larger copies
#: of the loop to compile.
TILE_VECTORS = {128: 8, 256: 8, 512: 8}
#: Rows of M are requested this many terms ahead when M outgrows the L1 cache
#: (the first layer's W): the loop is otherwise bound by the latency of
#: fetching rows from L2, which the hardware cannot predict. Only whole tiles
#: and tiles of at least PREFETCH_TILE_BYTES do it (the first layer's rows:
#: 64 float32 are 4 AVX-512 vectors): every copy of the loop is optimised
#: again in each kernel that calls this one, which made a cold start seconds
#: longer.
PREFETCH_DISTANCE = 16
PREFETCH_ABOVE_BYTES = 32 * 1024
PREFETCH_TILE_BYTES = 256


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
    name = config.CPU_NAME or binding.get_host_cpu_name()
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else get_host_cpu_features()
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


def _typed(out, o, M, rows, values, positions, start, stop):
    return (_c_array(out, 2) and _c_array(M, 2) and _c_array(values)
            and all(t is types.none or _c_array(t, 1, types.Integer) for t in (rows, positions))
            and out.dtype == M.dtype == values.dtype
            and all(isinstance(t, types.Integer) for t in (o, start, stop)))


@functools.cache
def vector_kernels(bits, tile_vectors):
    """The intrinsics ``(combine_rows, update_rows)`` with vectors of ``bits`` and tiles of up to ``tile_vectors``.

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
                _codegen(bits, tile_vectors, update=False))

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
                _codegen(bits, tile_vectors, update=True))

    return combine_rows, update_rows


@jit
def plain_combine_rows(out, o, M, rows, values, positions, start, stop):
    """``combine_rows`` as a plain loop, the sums kept in ``out[o]``: the same bits."""
    flat = values.reshape(values.size)
    zero = out.dtype.type(0)
    width = out.shape[1]
    for j in range(width):
        out[o, j] = zero
    for c in range(start, stop):
        v = flat[c] if positions is None else flat[positions[c]]
        m = c - start if rows is None else rows[c]
        for j in range(width):
            out[o, j] += v * M[m, j]


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
            total += v * M[c - start if rows is None else rows[c], j]
        result = out[o, j] + scale * total
        if result * zero != zero:  # an if, not ``finite and ...``: a Python bool also when run as Python
            finite = False
        out[o, j] = result
    return finite


def _codegen(bits, tile_vectors, update):
    """The code of ``combine_rows`` (update false) or ``update_rows`` with vectors of ``bits``."""
    def codegen(context, builder, sig, args):
        out, o, M, rows, values, positions, start, stop = sig.args[:8]
        lanes = bits // M.dtype.bitwidth
        align = M.dtype.bitwidth // 8
        intp = cgutils.intp_t
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
        if update:
            scale_v = args[8]
        count = builder.sub(stop_v, start_v)
        i32 = ir.IntType(32)
        vector = ir.VectorType(element, lanes)

        def index(data, ty, c):
            return context.cast(builder, builder.load(builder.gep(data, [c])), ty.dtype, types.intp)

        def broadcast(value, vector_type):
            undefined = ir.Constant(vector_type, ir.Undefined)
            first = builder.insert_element(undefined, value, ir.Constant(i32, 0))
            return builder.shuffle_vector(first, undefined,
                                          ir.Constant(ir.VectorType(i32, vector_type.count), [0] * vector_type.count))

        def load(pointer, mask):
            pointer = builder.bitcast(pointer, vector.as_pointer())
            if mask is None:
                return builder.load(pointer, align=align)
            return builder.call(masked_load, [pointer, ir.Constant(i32, align), mask, ir.Constant(vector, None)])

        def store(value, pointer, mask):
            pointer = builder.bitcast(pointer, vector.as_pointer())
            if mask is None:
                builder.store(value, pointer, align=align)
            else:
                builder.call(masked_store, [value, pointer, ir.Constant(i32, align), mask])

        def tile(column, num_vectors, mask=None):
            """Columns column .. column + num_vectors * lanes (the lanes of mask, if given): sum in registers, then store."""
            sums = [cgutils.alloca_once_value(builder, ir.Constant(vector, None)) for _ in range(num_vectors)]

            def walk(prefetching):
                with cgutils.for_range(builder, count) as loop:
                    c = builder.add(start_v, loop.index)
                    at = c if positions_data is None else index(positions_data, positions, c)
                    term = broadcast(builder.load(builder.gep(values_data, [at])), vector)
                    m = loop.index if rows_data is None else index(rows_data, rows, c)
                    row = builder.add(builder.mul(m, M_width), column)
                    if prefetching:
                        ahead = builder.add(c, ir.Constant(intp, PREFETCH_DISTANCE))
                        last = builder.sub(stop_v, ir.Constant(intp, 1))
                        ahead = builder.select(builder.icmp_signed("<", ahead, last), ahead, last)
                        future = builder.add(builder.mul(index(rows_data, rows, ahead), M_width), column)
                        for line in range(0, num_vectors * lanes, 64 // align):
                            pointer = builder.gep(M_a.data, [builder.add(future, ir.Constant(intp, line))])
                            flags = (0, 3, 1)  # a read, to keep in all cache levels, of data
                            builder.call(prefetch, [builder.bitcast(pointer, ir.IntType(8).as_pointer()),
                                                    *(ir.Constant(i32, flag) for flag in flags)])
                    for v, total in enumerate(sums):
                        entry = load(builder.gep(M_a.data, [builder.add(row, ir.Constant(intp, v * lanes))]), mask)
                        builder.store(builder.fadd(builder.load(total), builder.fmul(term, entry)), total)

            tile_bytes = num_vectors * bits // 8
            if rows_data is None or mask is not None or (num_vectors < tile_vectors
                                                         and tile_bytes < PREFETCH_TILE_BYTES):
                walk(False)
            else:
                with builder.if_else(large) as (then, otherwise):
                    with then:
                        walk(True)
                    with otherwise:
                        walk(False)
            for v, total in enumerate(sums):
                at = builder.add(column, ir.Constant(intp, v * lanes))
                result = builder.load(total)
                if update:
                    result = builder.fadd(load(builder.gep(out_row, [at]), mask),
                                          builder.fmul(broadcast(scale_v, vector), result))
                    # result * 0 is NaN exactly where result is inf or NaN ("uno": unordered with itself).
                    times_zero = builder.fmul(result, ir.Constant(vector, None))
                    bad = builder.fcmp_unordered("uno", times_zero, times_zero)
                    if mask is not None:
                        bad = builder.and_(bad, mask)
                    builder.store(builder.or_(builder.load(non_finite), bad), non_finite)
                store(result, builder.gep(out_row, [at]), mask)

        prefetch = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32]), "llvm.prefetch")
        mask_type = ir.VectorType(ir.IntType(1), lanes)
        non_finite = cgutils.alloca_once_value(builder, ir.Constant(mask_type, [0] * lanes)) if update else None
        suffix = f"v{lanes}f{M.dtype.bitwidth}.p0"
        masked_load = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            vector, [vector.as_pointer(), i32, mask_type, vector]), "llvm.masked.load." + suffix)
        masked_store = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.VoidType(), [vector, vector.as_pointer(), i32, mask_type]), "llvm.masked.store." + suffix)
        M_bytes = builder.mul(builder.mul(cgutils.unpack_tuple(builder, M_a.shape, 2)[0], M_width),
                              ir.Constant(intp, align))
        large = builder.icmp_signed(">", M_bytes, ir.Constant(intp, PREFETCH_ABOVE_BYTES))
        step = ir.Constant(intp, tile_vectors * lanes)
        full_tiles = builder.sdiv(width, step)
        with cgutils.for_range(builder, full_tiles) as loop:
            tile(builder.mul(loop.index, step), tile_vectors)
        column = cgutils.alloca_once_value(builder, builder.mul(full_tiles, step))
        # At most one tile of each smaller power of two: they add up to any remainder of whole vectors.
        num_vectors = 1 << ((tile_vectors - 1).bit_length() - 1)
        while num_vectors:
            done = builder.load(column)
            end = builder.add(done, ir.Constant(intp, num_vectors * lanes))
            with builder.if_then(builder.icmp_signed("<=", end, width)):
                tile(done, num_vectors)
                builder.store(end, column)
            num_vectors //= 2
        # The last columns, fewer than a vector: one vector with only those lanes read and written.
        done = builder.load(column)
        with builder.if_then(builder.icmp_signed("<", done, width)):
            lane_type = ir.VectorType(i32, lanes)  # lane numbers in 32 bits: the compare is as wide as the data
            remaining = broadcast(builder.trunc(builder.sub(width, done), i32), lane_type)
            tile(done, 1, builder.icmp_signed("<", ir.Constant(lane_type, list(range(lanes))), remaining))
        if update:  # all lanes clear: the lanes as the bits of one integer
            lanes_bits = builder.bitcast(builder.load(non_finite), ir.IntType(lanes))
            return builder.icmp_unsigned("==", lanes_bits, ir.Constant(ir.IntType(lanes), 0))
        return context.get_dummy_value()
    return codegen


CPU_NAME, CPU_FEATURES = cpu_target()
#: The width every kernel uses (0: the plain twins), chosen once at import.
VECTOR_BITS = choose_vector_bits(_config.SIMD, CPU_FEATURES, config.DISABLE_JIT)
if VECTOR_BITS:
    combine_rows, update_rows = vector_kernels(VECTOR_BITS, TILE_VECTORS[VECTOR_BITS])
else:
    combine_rows, update_rows = plain_combine_rows, plain_update_rows
