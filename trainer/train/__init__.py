"""Two-stage PSA-VLM training (`python -m trainer train --job JOB.json`).

job.py parses and validates the job file, data.py reads prepared datasets, lora.py is the LoRA
module, resume_checkpoints.py saves/resumes/prunes, loop.py runs the stages.

stdout carries only the progress events, one JSON object per line, because the worker parses it;
everything else (logging, stray prints, native libraries) goes to stderr. Exit codes: 0 done,
1 failed (retryable), 2 bad job/dataset/base (do not retry), 143 SIGTERM / 130 SIGINT / parent
exited (checkpoint written, resumable).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, TextIO

EXIT_INVALID, EXIT_FAILED = 2, 1
SIGNAL_EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}


def _events_stream() -> TextIO:
    """A private copy of fd 1 for events; fd 1 itself is pointed at stderr."""
    sys.stdout.flush()
    stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v  # NaN is not JSON


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _watch_parent(on_exit) -> None:
    """Stops training when the parent (the worker) dies, even by SIGKILL, so no orphan keeps the
    GPU: the child is then re-parented and getppid() changes. Under torch.distributed.run the
    parent is the launcher, so the worker's pid comes in PSA_WATCH_PID and is watched as well.
    (Closing stdin is not used as the signal because callers such as scripts/lib/trainer-cli.ts
    close it at once.)"""
    parent = os.getppid()
    watched = int(os.environ.get("PSA_WATCH_PID", "0") or 0)

    def poll() -> None:
        while os.getppid() == parent and (watched <= 0 or _alive(watched)):
            time.sleep(1.0)
        logging.getLogger("trainer.train").warning("parent process exited: stopping after the current step")
        on_exit()

    threading.Thread(target=poll, name="watch-parent", daemon=True).start()


def train_cli(job_path: str) -> int:
    stream = _events_stream()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")

    received: list[int] = []
    from .distributed import world_from_env

    world = world_from_env()

    def emit(**event: Any) -> None:
        # Under torch.distributed.run rank 0 reports progress; any rank may report its error.
        if stream.closed or (not world.main and event.get("event") != "error"):
            return
        try:
            stream.write(json.dumps({k: _finite(v) for k, v in event.items()}) + "\n")
            stream.flush()
        except (BrokenPipeError, OSError):
            # Nobody reads the events any more (the worker died): checkpoint and stop.
            received.append(signal.SIGTERM)
            with contextlib.suppress(OSError):
                stream.close()

    def on_signal(signum, _frame) -> None:
        # Finish the step in flight, checkpoint, then exit; a second signal changes nothing.
        logging.getLogger("trainer.train").warning("signal %d: stopping after the current step", signum)
        received.append(signum)

    for sig in SIGNAL_EXIT:
        signal.signal(sig, on_signal)
    _watch_parent(lambda: received.append(signal.SIGTERM))

    from .job import UserInputError, load_job
    from .loop import Interrupted, Trainer

    try:
        job = load_job(job_path)
        Trainer(job, emit, lambda: bool(received), world).run()
        return 0
    except Interrupted as e:
        logging.getLogger("trainer.train").warning("%s", e)
        return SIGNAL_EXIT.get(received[0] if received else signal.SIGTERM, 143)
    except UserInputError as e:
        field = getattr(e, "field", None)
        emit(event="error", message=str(e), retryable=False, **({"field": field} if field else {}))
        return EXIT_INVALID
    except Exception as e:  # noqa: BLE001 - any other failure is reported as an event, then exit 1
        traceback.print_exc(file=sys.stderr)
        emit(event="error", message=f"{type(e).__name__}: {e}", retryable=True)
        return EXIT_FAILED
    finally:
        world.close()
