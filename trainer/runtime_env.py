"""Process-wide torch settings: Debian's torch starts with one thread."""

import os


def configure_torch() -> None:
    import torch

    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    torch.set_num_threads(threads)
