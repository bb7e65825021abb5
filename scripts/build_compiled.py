#!/usr/bin/env python3
"""Build the compiled model (``make compiled``): mypyc on every module of svasim.model.

Compiles the modules :func:`svasim.compiled.sources` lists (every module of the model
but ``svasim/model/__init__.py``) into ``src/svasim/_compiled/`` with a C compiler, and writes the
manifest of the sources it compiled; :mod:`svasim.compiled` uses the build only while
the sources match it. The build goes to a directory of its own first and replaces the
old one when it is complete, so a failed build leaves the previous one as it was.

Usage: python scripts/build_compiled.py [--force]   (without --force, a build that
matches the sources is kept)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))

from svasim import compiled  # noqa: E402  (the sources' own, not an installed copy)

SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify

paths, lib, temp = sys.argv[1:4]
setup(
    name="svasim-compiled-model",
    ext_modules=mypycify(paths.split(","), opt_level="3", target_dir=temp),
    script_args=["build_ext", "--build-lib", lib, "--build-temp", temp],
)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build even when the build matches the sources")
    args = parser.parse_args()
    if not args.force and not compiled.stale_reason():
        print(f"compiled model up to date ({compiled.ROOT.relative_to(ROOT)})")
        return 0
    sources = compiled.sources()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="svasim-mypyc-") as tmp:
        lib = Path(tmp) / "lib"
        temp = Path(tmp) / "temp"
        setup = Path(tmp) / "setup.py"
        setup.write_text(SETUP)
        env = dict(os.environ, MYPYPATH=os.pathsep.join([str(SRC), str(ROOT / "clients" / "python")]))
        # Run from src/, so that mypy names each file's module from its path (svasim.model.x).
        paths = ",".join(f"svasim/{m}" for m in sources)
        proc = subprocess.run(
            [sys.executable, str(setup), paths, str(lib), str(temp)],
            cwd=SRC,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            print("make compiled: the build failed (output above); the interpreted model is unchanged", file=sys.stderr)
            return 1
        # The one library every module of the build imports (named after the build's hash).
        (shared,) = (p.name[: -len(compiled.ext_suffix())] for p in lib.glob("*__mypyc" + compiled.ext_suffix()))
        manifest = {"ext_suffix": compiled.ext_suffix(), "shared": shared, "sources": sources}
        (lib / compiled.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        new = compiled.ROOT.with_name(compiled.ROOT.name + ".new")
        shutil.rmtree(new, ignore_errors=True)
        shutil.copytree(lib, new)
        shutil.rmtree(compiled.ROOT, ignore_errors=True)
        new.rename(compiled.ROOT)
    built = len(list(compiled.ROOT.rglob("*" + compiled.ext_suffix())))
    print(f"compiled model: {len(sources)} modules, {built} extensions in {compiled.ROOT.relative_to(ROOT)} "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
