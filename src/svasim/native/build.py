"""The preload library: where it is, and building it from ``native/`` when it is missing.

The library is built by the project's own build (``make native``, or ``make -C native``)
into the gitignored ``build/native/``; a library built elsewhere can be named with
``SVASIM_PRELOAD``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

#: The source tree's root when svasim runs from a checkout (an editable install).
SOURCE_ROOT = Path(__file__).resolve().parents[3]
NATIVE_DIR = SOURCE_ROOT / "native"
BUILD_DIR = SOURCE_ROOT / "build" / "native"
LIBRARY_NAME = "libsvasim_preload.so"


class BuildError(RuntimeError):
    """The preload library cannot be found or built."""


def _stale(lib: Path) -> bool:
    if not lib.exists():
        return True
    built = lib.stat().st_mtime
    sources = [*NATIVE_DIR.glob("preload/*.[ch]"), NATIVE_DIR / "Makefile"]
    return any(s.stat().st_mtime > built for s in sources)


def preload_library(*, rebuild: bool = True) -> Path:
    """The path of the preload library, built (or rebuilt, when a source is newer) first.

    Raises BuildError with what to do when there is neither a library nor the sources
    and a C compiler to build one.
    """
    named = os.environ.get("SVASIM_PRELOAD")
    if named:
        lib = Path(named)
        if not lib.is_file():
            raise BuildError(f"SVASIM_PRELOAD names {lib}, which is not a file")
        return lib.resolve()
    lib = BUILD_DIR / LIBRARY_NAME
    if not (NATIVE_DIR / "Makefile").is_file():
        if lib.is_file():
            return lib
        raise BuildError("no preload library: build it from svasim's native/ and name it in SVASIM_PRELOAD")
    if rebuild and _stale(lib):
        make = shutil.which("make")
        if make is None or shutil.which(os.environ.get("CC", "cc")) is None:
            raise BuildError("building the preload library needs make and a C compiler (cc)")
        r = subprocess.run(
            [make, "-s", "-C", str(NATIVE_DIR), f"OUT={BUILD_DIR}"], capture_output=True, text=True, timeout=300
        )
        if r.returncode != 0:
            raise BuildError(f"building the preload library failed:\n{r.stdout}{r.stderr}")
    return lib
