"""The PyTorch trainer (`python -m trainer --help`).

The pinned wheels it needs beside Debian's torch (trainer/requirements.txt) live in the
repository's .cache/python-deps, installed by scripts/ensure-python-deps.sh or the Dockerfile.
That directory goes on sys.path here, so every way of starting the trainer (`python -m trainer`,
torch.distributed.run's workers, a script importing trainer.*) finds the same pins.
"""

import os
import sys

PYTHON_DEPS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "python-deps")
if os.path.isdir(PYTHON_DEPS) and PYTHON_DEPS not in sys.path:
    sys.path.insert(0, PYTHON_DEPS)

# OpenMP threads that wait for work sleep instead of spinning. Debian's torch runs its own ops on
# libgomp's threads and matrix products on OpenBLAS's pthreads: spinning OpenMP threads took the
# cores OpenBLAS needed (half the CPU time was system time). Set before torch loads libgomp, which
# reads it once; an operator's own OMP_WAIT_POLICY is kept. README, "bench:train".
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
