"""Memory of dataset generation: peak resident memory while writing a ≥ 2 GB HDF5 file.

``python -m benchmarks datasets``. Each generation runs in a fresh subprocess (so the figure is
that process's own peak, ``ru_maxrss`` of RUSAGE_SELF read at its end) with the defaults of
:func:`hamgrad.datasets.generate` (automatic chunk and simulation batch sizes, no compression).
The system is ``oscillator-chain`` with 1024 masses, 20 stored steps per trajectory: a fast ground
truth, so the run is dominated by writing. The file goes to a temporary directory and is deleted.

Rows:
- peak RSS for the large file; the "peer" is the file size, so ratio = peak RSS / file size;
  target: peak RSS < 500 MB with a file of at least 2 GB.
- peak RSS for the large file against the same generation 8× smaller: ratio ≈ 1 when memory does
  not grow with the dataset (target ratio < 1.2).
Extras: the process's RSS after importing torch, h5py and hamgrad (the floor of any run), wall time,
write throughput.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOF = 1024
N_STEPS = 20
DT = 0.05
LARGE_TRAJECTORIES = 3000  # (4·1024 + 1)·21·8 B ≈ 0.69 MB each: 2.07 GB
SMALL_TRAJECTORIES = LARGE_TRAJECTORIES // 8
TARGET_RSS_MB = 500.0
TARGET_FILE_BYTES = 2e9

CHILD = """
import json, resource, sys, time
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import torch, h5py, numpy
import hamgrad.datasets, hamgrad.systems
torch.set_num_threads(1)
floor = rss_mb()
t0 = time.perf_counter()
path = hamgrad.datasets.generate(
    "oscillator-chain", sys.argv[1], params={"n": int(sys.argv[2])},
    n_trajectories=int(sys.argv[3]), n_steps=int(sys.argv[4]), dt=float(sys.argv[5]),
    seed=0, progress=False,
)
seconds = time.perf_counter() - t0
print(json.dumps({"peak_rss_mb": rss_mb(), "import_rss_mb": floor, "seconds": seconds}))
"""


def measure(n_trajectories: int) -> dict:
    """Generate in a subprocess; return its peak RSS (MB), import RSS, time and file size."""
    with tempfile.TemporaryDirectory(prefix="hamgrad-bench-") as tmp:
        path = Path(tmp) / "big.h5"
        args = [str(path), str(DOF), str(n_trajectories), str(N_STEPS), str(DT)]
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, *args],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"generation failed: {proc.stderr.strip().splitlines()[-1:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["file_bytes"] = path.stat().st_size
    return result


def run() -> list[dict]:
    command = ".venv/bin/python -m benchmarks datasets"
    t0 = time.perf_counter()
    large = measure(LARGE_TRAJECTORIES)
    small = measure(SMALL_TRAJECTORIES)
    size_mb = large["file_bytes"] / 1e6
    peak = large["peak_rss_mb"]
    return [
        {
            "what": f"peak RSS (MB) generating a {size_mb / 1000:.2f} GB oscillator-chain dataset "
            f"(peer: file size, MB)",
            "ours": round(peak, 1),
            "peer": round(size_mb, 1),
            "ratio": round(peak / size_mb, 4),
            "target": f"peak RSS < {TARGET_RSS_MB:.0f} MB with a file >= 2 GB",
            "met": bool(peak < TARGET_RSS_MB and large["file_bytes"] >= TARGET_FILE_BYTES),
            "command": command,
            "import_rss_mb": round(large["import_rss_mb"], 1),
            "seconds": round(large["seconds"], 1),
            "write_mb_per_s": round(size_mb / large["seconds"], 1),
            "dataset": {
                "system": "oscillator-chain",
                "dof": DOF,
                "n_trajectories": LARGE_TRAJECTORIES,
                "n_steps": N_STEPS,
                "dt": DT,
            },
        },
        {
            "what": f"peak RSS (MB): {size_mb / 1000:.2f} GB dataset vs one 8x smaller "
            f"({small['file_bytes'] / 1e9:.2f} GB)",
            "ours": round(peak, 1),
            "peer": round(small["peak_rss_mb"], 1),
            "ratio": round(peak / small["peak_rss_mb"], 3),
            "target": "ratio < 1.2 (memory does not grow with the dataset)",
            "met": bool(peak / small["peak_rss_mb"] < 1.2),
            "command": command,
            "seconds_total": round(time.perf_counter() - t0, 1),
        },
    ]
