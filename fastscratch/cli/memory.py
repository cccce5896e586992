"""Whether a network fits in the memory this process may still use, checked before any data is loaded."""
import contextlib
import os

from fastscratch.cli.text import byte_count, layer_sizes

PARAMETER_COPIES = 4  # weights, their gradients, the kernels' transposed copy, the last finite copy kept


def memory_problem(sizes, dtype):
    """A sentence when the network's parameters alone cannot fit in the available memory, else None."""
    need = PARAMETER_COPIES * parameter_bytes(sizes, dtype)
    available = available_memory()
    if available is None or need <= available:
        return None
    return (f"a {layer_sizes(sizes)} {dtype} network needs at least {byte_count(need)} ({PARAMETER_COPIES} "
            f"copies of its {parameter_count(sizes):,} parameters), but only {byte_count(available)} "
            f"of memory is available")


def parameter_count(sizes):
    """Weights and biases of a network whose layer sizes, input first, are ``sizes``."""
    return sum((n_in + 1) * n_out for n_in, n_out in zip(sizes, sizes[1:]))


def parameter_bytes(sizes, dtype):
    """The bytes of one copy of the parameters; ``dtype`` is "float64" or "float32"."""
    return parameter_count(sizes) * {"float64": 8, "float32": 4}[dtype]


def available_memory():
    """Bytes this process may still allocate: MemAvailable, capped by RLIMIT_AS; None if unknown."""
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            with open("/proc/self/statm", encoding="ascii") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            available = max(limit - used, 0) if available is None else min(available, max(limit - used, 0))
    except (ImportError, OSError, ValueError):
        pass
    return available
