"""Building and running the C timer of ``native/calibrate/``.

The C source is compiled on first use with the host's C compiler into a cache directory,
keyed by the source and the compiler's version, so a changed source or compiler builds
anew and nothing binary is ever kept in the tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

#: The C source, found from the package when the tree is installed in place.
SOURCE_NAME = "calibrate.c"
#: How it is compiled (part of the cache key, so a change of flags builds anew).
CFLAGS = ("-O2", "-Wall", "-pthread")


class CalibrationError(RuntimeError):
    """The host cannot build or run the timer; the message says why, in one line."""


def source_path() -> Path:
    """The timer's C source: ``$SVASIM_NATIVE_DIR/calibrate/``, the checkout's
    ``native/calibrate/`` or the installed package's copy."""
    from svasim.native.build import native_dir

    path = native_dir() / "calibrate" / SOURCE_NAME
    if not path.is_file():
        raise CalibrationError(
            f"cannot find the timer's source {path} (set SVASIM_NATIVE_DIR to the native/ directory)"
        )
    return path


def cache_dir() -> Path:
    """Where built timers live: svasim's cache (see :func:`svasim.native.build.cache_dir`)."""
    from svasim.native.build import cache_dir as svasim_cache

    return svasim_cache()


def _compiler() -> str:
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise CalibrationError(f"no C compiler {cc!r} on PATH (install gcc, or set CC)")
    return cc


def build() -> Path:
    """The timer's executable, compiled now if the cache has none for this source and compiler."""
    machine = platform.machine()
    if machine not in ("x86_64", "AMD64"):
        raise CalibrationError(f"the timer uses x86-64 instructions; this host is {machine}")
    src = source_path()
    cc = _compiler()
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise CalibrationError(f"cannot run {cc} --version: {e}") from None
    key = hashlib.sha256(src.read_bytes() + version.encode() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    out = cache_dir() / f"calibrate-{key}" / "svasim-calibrate"
    if out.is_file() and os.access(out, os.X_OK):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built under a temporary name and renamed, so a concurrent build never runs half a file.
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".build-")
    os.close(fd)
    try:
        r = subprocess.run([cc, *CFLAGS, "-o", tmp, str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[:200])
            raise CalibrationError(f"{cc} could not build {src}: {first}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def run(exe: Path, *, cpu: int, quick: bool, timeout: float = 300) -> dict[str, Any]:
    """Run the timer pinned to ``cpu`` and return what it printed.

    The calling thread is pinned just long enough for the child to inherit the mask
    (``sched_setaffinity`` of pid 0 affects only the calling thread), then restored.
    """
    allowed = os.sched_getaffinity(0)
    if cpu not in allowed:
        raise CalibrationError(f"CPU {cpu} is not one this process may run on ({sorted(allowed)})")
    args = [str(exe)] + (["--quick"] if quick else [])
    os.sched_setaffinity(0, {cpu})
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CalibrationError(f"the timer did not finish in {timeout:.0f} s") from None
    finally:
        os.sched_setaffinity(0, allowed)
    if r.returncode != 0:
        raise CalibrationError(f"the timer failed (exit {r.returncode}): {r.stderr.strip()[:200]}")
    try:
        data: dict[str, Any] = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        raise CalibrationError(f"the timer printed no valid JSON: {e}") from None
    if data.get("cpus_allowed") != 1 or data.get("cpu") != cpu:
        raise CalibrationError(f"the timer was not pinned to CPU {cpu} (it ran on {data.get('cpu')})")
    return data
