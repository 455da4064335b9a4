"""Keep freed tensor memory in the process instead of returning it to the system after every batch.

glibc's malloc serves each allocation above its mmap threshold (128 KiB, growing to at most 32 MiB) with a fresh
`mmap`, and shrinks the heap as soon as 128 KiB are free at its top. A CPU forward of a batch of log-mels
allocates and frees many maps of tens of MB, so every batch faults in (zero-fills) those pages again. Measured
on 2 cores: the folded baseline CRNN's forward of a batch of 16 windows took 45 ms per 10 s window this way and
25 ms with the thresholds raised; a training step of the full baseline gave 2.3-2.7 clips/s this way and 4.0-4.7
with them raised (`benchmarks/train_throughput.py`, interleaved runs). With both thresholds raised freed blocks
are reused by the next batch; the resident memory is then the peak of one batch, which does not grow with the
amount of data processed. The command-line entry points (training, extraction, inference) call
`keep_freed_memory` first.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB for this process. True when done; False where there is
    no glibc `mallopt` (macOS, Windows, musl), whose allocators are left as they are."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD_BYTES))
