"""How the command writes what it reports: OS errors, layer sizes, byte counts, durations, JSON numbers."""
import math


def reason(err):
    """An OSError as "No space left on device", without the errno and the path."""
    return err.strerror or str(err)


def layer_sizes(sizes):
    """``[784, 64, 32, 10]`` as ``784-64-32-10``."""
    return "-".join(map(str, sizes))


def byte_count(n):
    """``512 bytes``, ``3.0 GiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def duration(seconds):
    """Seconds as ``h:mm:ss``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def finite_or_none(value):
    """JSON has no NaN or infinity: write ``null`` for them."""
    return value if math.isfinite(value) else None
