"""The preload library: where it is, and building it from ``native/`` when it is missing.

From a checkout, the library is built by the project's own build (``make native``, or
``make -C native``) into the gitignored ``build/native/``. An installed svasim carries
the same sources as ``svasim/_native/`` and builds the library on first use into its
cache (``$SVASIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/svasim``, else ``~/.cache/svasim``).
``SVASIM_NATIVE_DIR`` names another source tree; ``SVASIM_PRELOAD`` a library built
elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

#: The source tree's root when svasim runs from a checkout (an editable install).
SOURCE_ROOT = Path(__file__).resolve().parents[3]
#: The sources an installed svasim carries.
PACKAGED_DIR = Path(__file__).resolve().parents[1] / "_native"
LIBRARY_NAME = "libsvasim_preload.so"


def native_dir() -> Path:
    """The C sources: ``$SVASIM_NATIVE_DIR``, the checkout's ``native/``, or the package's copy."""
    env = os.environ.get("SVASIM_NATIVE_DIR")
    if env:
        return Path(env)
    checkout = SOURCE_ROOT / "native"
    return checkout if (checkout / "Makefile").is_file() else PACKAGED_DIR


def cache_dir() -> Path:
    """``$SVASIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/svasim``, else ``~/.cache/svasim``."""
    env = os.environ.get("SVASIM_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "svasim"


def build_dir() -> Path:
    """Where the library is built: the checkout's ``build/native/``, else the cache."""
    if native_dir() == SOURCE_ROOT / "native":
        return SOURCE_ROOT / "build" / "native"
    return cache_dir() / "native"


class BuildError(RuntimeError):
    """The preload library cannot be found or built."""


def _stale(lib: Path) -> bool:
    if not lib.exists():
        return True
    built = lib.stat().st_mtime
    src = native_dir()
    sources = [*src.glob("preload/*.[ch]"), src / "Makefile"]
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
    src, out = native_dir(), build_dir()
    lib = out / LIBRARY_NAME
    if not (src / "Makefile").is_file():
        if lib.is_file():
            return lib
        raise BuildError("no preload library: build it from svasim's native/ and name it in SVASIM_PRELOAD")
    if rebuild and _stale(lib):
        make = shutil.which("make")
        if make is None or shutil.which(os.environ.get("CC", "cc")) is None:
            raise BuildError("building the preload library needs make and a C compiler (cc)")
        r = subprocess.run([make, "-s", "-C", str(src), f"OUT={out}"], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise BuildError(f"building the preload library failed:\n{r.stdout}{r.stderr}")
    return lib
