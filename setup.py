"""Package discovery across the server's two source roots (metadata is in pyproject.toml).

The import package ``svasim`` lives in ``src/`` and the Alembic migrations
(``svasim_migrations``) in ``migrations/``. The API package ``svasim_api`` and the client
``svasim_client`` are the separate distribution ``svasim-client`` in ``clients/python/``.

The C sources of ``native/`` (the preload library of ``svasim run-native`` and the
calibration timer) go into an installed package as ``svasim/_native/``, so that an
install that is not a checkout can still build them on first use.
"""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

NATIVE_FILES = ("Makefile", "preload/*.c", "preload/*.h", "calibrate/*.c")


class BuildWithNative(build_py):
    """build_py, plus a copy of native/'s sources into the package."""

    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent / "native"
        out = Path(self.build_lib) / "svasim" / "_native"
        for pattern in NATIVE_FILES:
            for src in root.glob(pattern):
                dst = out / src.relative_to(root)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


packages = find_packages("src", include=["svasim*"]) + ["svasim_migrations", "svasim_migrations.versions"]
package_dir = {"svasim": "src/svasim", "svasim_migrations": "migrations"}
setup(packages=packages, package_dir=package_dir, cmdclass={"build_py": BuildWithNative})
