import platform
import subprocess
import sys

import pytest

from desed_task.utils.allocator import keep_freed_memory

PROBE = """
import sys
import numpy as np
from desed_task.utils.allocator import keep_freed_memory

def resident_mb():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20

applied = keep_freed_memory() if sys.argv[1] == "keep" else None
block = np.ones(2**25, dtype=np.float32)  # 128 MiB, touched
held = resident_mb()
del block
print(applied, held - resident_mb())
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_blocks_stay_in_the_process_for_the_next_batch():
    """Without it glibc unmaps a freed 128 MiB block at once; with it the block stays for reuse."""
    released = {}
    for mode in ("default", "keep"):
        completed = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        applied, released[mode] = completed.stdout.split()
        assert applied == ("True" if mode == "keep" else "None")
    assert float(released["default"]) > 100
    assert float(released["keep"]) < 10


def test_elsewhere_it_reports_that_nothing_was_changed(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
