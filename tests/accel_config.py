"""Debian's accel-config and accel-config-test packages (Intel's tool and test suite),
which the native and device-configuration tests run unmodified.

:func:`installed` installs them when they are missing and this process may (root, with
apt-get): always in CI, where a test that needs them must run. Elsewhere, without root,
the tests that need them are skipped with the command that installs them (but the
suite, which fails: it is left out with ``SVASIM_NATIVE_SUITE=0``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .required import missing

TESTDIR = Path("/usr/libexec/accel-config/test")
RUNNER = TESTDIR / "dsa_user_test_runner.sh"
CONFIGS = TESTDIR / "configs"
CONTRIB = Path("/etc/accel-config/contrib/configs")
PACKAGES = ("accel-config", "accel-config-test")


def present() -> bool:
    """Whether the tool, the suite's runner and accel-config's contrib profiles are there."""
    return bool(shutil.which("accel-config")) and RUNNER.is_file() and CONTRIB.is_dir()


@functools.cache
def _install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    subprocess.run(["apt-get", *lock, "update", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", *lock, "install", "-y", "-q", *PACKAGES], env=env, check=True, stdout=subprocess.DEVNULL)


def installed(*, required: bool = False) -> None:
    """Make sure the packages are installed: install them (root with apt-get); else fail
    in CI, or anywhere when ``required``, and skip elsewhere."""
    if present():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        _install()
        assert present(), f"apt-get installed {' '.join(PACKAGES)}, but {RUNNER} or {CONTRIB} is missing"
        return
    message = f"needs Debian's {' and '.join(PACKAGES)} (apt-get install {' '.join(PACKAGES)})"
    if required:
        pytest.fail(message, pytrace=False)
    missing(message, message)
