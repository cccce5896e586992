"""Every setting that changes how fast fastscratch runs or what resources it takes, never its numbers: one name each.

Modules read a setting as ``config.NAME`` when they need it (``from fastscratch import config``), never
copying it into a name or a default argument of their own: one assignment (``config.MIN_ROWS_PER_THREAD =
1``, ``monkeypatch.setattr(config, ...)`` in a test) then changes every reader, and ``reset()`` restores the
defaults. Settings marked *compiled in* are read when the kernels are compiled (at import, or at a
kernel's first call): set them before the drop-in is first used, or in a new process. The kernel cache is
stamped with this file's source (``kernel_cache.SOURCE_STAMP``), so a new default recompiles the kernels.

What defines the bits (the activation codes, the vector tile's sums) stays with the kernels; what the
command and studies do (their probes, waits, limits of files and specs) stays in their modules.
"""
import copy
import os
import warnings

# --- How each call runs (``routing``) ------------------------------------------------------------------------

#: Where the compiled epoch stops paying off (measured: benchmarks/crossover.py), so that ``train``
#: runs the reference's NumPy products instead, with identical results: a hidden layer of more than
#: KERNEL_MAX_HIDDEN_WEIGHTS weights, whose dense products BLAS's blocked GEMM does faster at any batch
#: size; or batches of more than KERNEL_MAX_BATCH rows, unless the hidden layers are small (at most
#: KERNEL_SMALL_HIDDEN_WEIGHTS weights each) and the input sparse (at most KERNEL_SPARSE_INPUT of its
#: entries nonzero): then the first layer's skipped zeros keep the kernels ahead at every batch size
#: measured (up to 1024 rows). The kernels' time grows with the nonzeros, BLAS's does not (the figures
#: are in docs/performance.md).
KERNEL_MAX_BATCH = 127
KERNEL_SMALL_HIDDEN_WEIGHTS = 128 * 64
KERNEL_SPARSE_INPUT = 0.4
KERNEL_MAX_HIDDEN_WEIGHTS = 256 * 256

#: Outside the compiled epoch, a layer's forward product runs as a kernel (``dense_forward.blocked_forward``,
#: every entry visited as BLAS does, so NaN weights show whatever the input; many rows in threads) when its
#: input has at most this many entries (rows x inputs), else as the reference's BLAS expression. The kernel
#: was ahead of one-thread BLAS at every size measured, up to MNIST's 60,000 rows (figures in
#: docs/performance-calls.md): no limit by default.
KERNEL_MAX_ENTRIES = 2 ** 62

#: A backward pass outside the compiled epoch (``backward``, and ``train``'s batch loop) computes the first layer's
#: weight gradient as a kernel over its input's nonzero entries (``dense_backward.weight_gradients``) when the input
#: is sparse (at most KERNEL_SPARSE_INPUT of its entries nonzero: MNIST's 19 %) and of at most this many rows; on
#: dense inputs (the hidden layers' activations), and past it, BLAS's blocked product was faster (figures in
#: docs/performance-calls.md), and the kernel's scratch grows with the rows.
KERNEL_MAX_BACKWARD_ROWS = 128

#: ``evaluate_accuracy`` of fewer rows than this runs them one by one: indexing them for the compiled pass
#: costs more than it saves.
COMPILED_MIN_ROWS = 8

#: Rows of X, taken evenly, whose nonzero entries estimate X's fraction of them (``KERNEL_SPARSE_INPUT``).
DENSITY_SAMPLE_ROWS = 1024

#: Rows per group of the compiled forward passes of ``evaluate_accuracy``, ``train``'s evaluation, batched
#: ``predict`` and per-call ``forward``: the first layer takes a group a block of inputs at a time, its outputs in
#: L1.
EVAL_GROUP = 32

#: Routes of the per-call API kept on a network (``routing.RouteCache``): one per call, finiteness of the
#: input and outcome of the size test; calls of ever new kinds keep the recent ones only.
ROUTES_KEPT = 16

# --- Threads ---------------------------------------------------------------------------------------------------

#: Rows (or batches' rows) per thread below which another thread costs more than it saves: the indexing
#: of a data set, its comparison with a kept structure, and compiled forward passes over many rows.
MIN_ROWS_PER_THREAD = 4096

# --- What the calls keep of their data (``kept_data``, ``inputs``) -------------------------------------------

#: Rows of X compared with a kept structure at once, at the start, the middle and the end, before the
#: structure is trusted to run ahead: a data set of the same shape with other contents (shuffled, or new)
#: is then indexed at once rather than found out after an epoch run in vain.
SAMPLE_ROWS = 16

#: How many structures (views of one array, or its conversions to another dtype) an array keeps, the most
#: recently used; a network's ``kept_data.capacity`` starts here.
KEPT_DATA_SETS = 2

# --- Datasets (``datasets``) -----------------------------------------------------------------------------------

#: Seconds a mirror may stay silent (connecting or sending) before the next one is tried.
DOWNLOAD_TIMEOUT = 30.0

#: Images or labels in one file read with ``verify=False`` (784 MB of images): a hostile header costs no more.
MAX_ITEMS = 1_000_000

#: Base URLs of each dataset's files, tried in turn.
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",   # torchvision's mirror
              "https://storage.googleapis.com/cvdf-datasets/mnist/",   # TensorFlow's mirror
              "http://yann.lecun.com/exdb/mnist/"),   # the original site comes last: it answers 403
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",   # Zalando's and torchvision's
                      "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
}

# --- Compiled in (``kernel_cache``, ``kernels.simd``) ------------------------------------------------------------

#: Options of every kernel. ``fastmath`` stays off: it would reorder sums and fold ``inf - inf``, and the
#: drop-in must track the reference to ~1e-12; the kernels are written so that the vector dimension is never
#: a reduction, which LLVM vectorises without it. ``error_model="numpy"``: division by zero gives inf or nan,
#: as in NumPy, instead of raising inside a kernel.
JIT_OPTIONS = {"nogil": True, "error_model": "numpy", "boundscheck": False, "fastmath": False}

#: Vector accumulators per tile of the inner loop, by vector width. AVX2 and SSE have 16 vector registers:
#: 8 sums, the broadcast term and the products fit without spilling. AVX-512 has 32, but 8, 12 and 16 sums
#: were within noise of each other on layers 128 to 1024 wide, and larger tiles are larger copies of the
#: loop to compile.
TILE_VECTORS = {128: 8, 256: 8, 512: 8}

#: Rows of M are requested PREFETCH_DISTANCE terms ahead when M outgrows the L1 cache (PREFETCH_ABOVE_BYTES:
#: the first layer's W): the loop is otherwise bound by the latency of fetching rows from L2, which the
#: hardware cannot predict. Only whole tiles and tiles of at least PREFETCH_TILE_BYTES do it (the first
#: layer's rows: 64 float32 are 4 AVX-512 vectors): every copy of the loop is optimised again in each kernel
#: that calls this one, which made a cold start seconds longer.
PREFETCH_DISTANCE = 16
PREFETCH_ABOVE_BYTES = 32 * 1024
PREFETCH_TILE_BYTES = 256

DEFAULTS = {name: copy.deepcopy(value) for name, value in globals().items() if name.isupper()}

#: The values ``FASTSCRATCH_SIMD`` may take: the vector width of the kernels' inner loop (``kernels.simd``).
SIMD_CHOICES = ("auto", "plain", "128", "256", "512")


def _simd_setting():
    setting = os.environ.get("FASTSCRATCH_SIMD", "").strip().lower() or "auto"
    if setting not in SIMD_CHOICES:
        warnings.warn(f"FASTSCRATCH_SIMD={setting!r} is not one of {', '.join(SIMD_CHOICES)}: using auto",
                      RuntimeWarning, stacklevel=3)
        return "auto"
    return setting


#: ``FASTSCRATCH_SIMD``, as read at import (compiled in).
SIMD = _simd_setting()


def reset(name=None):
    """Restore setting ``name`` (or every setting) to its default."""
    if name is not None and name not in DEFAULTS:
        raise KeyError(f"{name!r} is not a fastscratch setting; the settings are {', '.join(DEFAULTS)}")
    for key in DEFAULTS if name is None else (name,):
        globals()[key] = copy.deepcopy(DEFAULTS[key])
