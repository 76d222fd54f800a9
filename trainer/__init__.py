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
