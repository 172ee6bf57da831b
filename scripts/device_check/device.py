"""The device under check: what torch says of it, and its memory while the services run.

Device memory is read from outside the services: `nvidia-smi` samples the GPU's memory in use
every 200 ms for the whole check, and a service's share is the peak less what was in use before
it started. On the CPU, the device memory is the service's resident memory (bench.servers.PeakRSS).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from typing import Any

# Run in a child process, so that this one never holds a CUDA context (it would count in the
# GPU's memory in use) and a broken CUDA set-up is reported, not raised.
PROBE = """
import json, sys, torch
kind = sys.argv[1].split(":")[0]
found = {"torch": torch.__version__, "cuda_build": torch.version.cuda,
         "cuda_available": torch.cuda.is_available()}
if kind == "cuda" and torch.cuda.is_available():
    index = torch.device(sys.argv[1]).index or 0
    props = torch.cuda.get_device_properties(index)
    found.update(name=props.name, memory_gib=props.total_memory / 2**30,
                 capability=f"{props.major}.{props.minor}",
                 cudnn=torch.backends.cudnn.version(),
                 tf32_convolutions=torch.backends.cudnn.allow_tf32,
                 tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
print(json.dumps(found))
"""
SAMPLE_MS = 200


def describe(device: str) -> dict[str, Any]:
    """torch's version and, on a GPU, the card: name, memory, cuDNN, TF32 defaults."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, device], capture_output=True, text=True, timeout=120
        )
        found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return {"error": "torch could not be asked about the device"}
    driver = _nvidia_smi(["--query-gpu=driver_version", "--format=csv,noheader"])
    if driver:
        found["driver"] = driver.splitlines()[0].strip()
    return found


def gpu_index(device: str) -> int:
    _, _, index = device.partition(":")
    return int(index) if index.isdigit() else 0


class GpuMemory:
    """Memory in use on one GPU (MiB), sampled by `nvidia-smi -lms` while the block runs."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.samples: list[tuple[float, float]] = []  # (monotonic s, MiB)
        self._process: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)

    @property
    def available(self) -> bool:
        return bool(self.samples)

    def __enter__(self) -> GpuMemory:
        if shutil.which("nvidia-smi") is None:
            return self
        argv = ["nvidia-smi", "-i", str(self.index), "--query-gpu=memory.used",
                "--format=csv,noheader,nounits", "-lms", str(SAMPLE_MS)]  # fmt: skip
        self._process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self.samples and time.monotonic() < deadline and self._process.poll() is None:
            time.sleep(0.05)  # the baseline: before any service starts
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._thread.join(5)

    @property
    def baseline(self) -> float | None:
        return self.samples[0][1] if self.samples else None

    def peak(self, since: float, until: float) -> float | None:
        """The most in use between two `time.monotonic()` readings, less the baseline."""
        inside = [mib for t, mib in list(self.samples) if since <= t <= until]
        if not inside or self.baseline is None:
            return None
        return max(inside) - self.baseline

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            try:
                self.samples.append((time.monotonic(), float(line.strip())))
            except ValueError:
                continue


def _nvidia_smi(args: list[str]) -> str:
    if shutil.which("nvidia-smi") is None:
        return ""
    try:
        done = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""
