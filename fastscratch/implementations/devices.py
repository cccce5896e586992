"""Facts about a GPU that no framework reports: the NVIDIA kernel driver's version."""


def nvidia_driver():
    """The version of the loaded NVIDIA kernel module (``/proc/driver/nvidia/version``), or None."""
    try:
        with open("/proc/driver/nvidia/version") as f:
            words = f.readline().split()
    except OSError:
        return None
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..."
    return next((w for w in words if w[:1].isdigit() and "." in w), None)
