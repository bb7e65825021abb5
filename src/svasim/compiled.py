"""The compiled model: the modules of :mod:`svasim.model` built by mypyc, used when
``SVASIM_COMPILED=1``.

``make compiled`` (``scripts/build_compiled.py``) compiles every module of the model,
its subpackages' ``__init__`` included, but ``svasim/model/__init__.py`` itself (which
chooses) into ``src/svasim/_compiled/``: a C extension per module, one shared library,
and a manifest of the SHA-256 of each source it was built from. The code is the same
code: mypyc compiles the Python as written (it also checks the annotations at run
time), so a compiled run records the same transitions as an interpreted one
(``tests/model/test_compiled.py``, and the golden and replay tests that ``make test``
runs again compiled).

With ``SVASIM_COMPILED=1``, ``svasim.model`` calls :func:`activate` first, which puts
the build's ``svasim/model`` before its own directory on the package's ``__path__``;
every module and subpackage of the model then comes from the build. A build whose
manifest does not match the sources (a module edited since, or another Python) is never
used: the interpreted modules are, after one warning that says to run ``make compiled``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import sys
import sysconfig
from pathlib import Path
from typing import Any

log = logging.getLogger("svasim.compiled")

ENV = "SVASIM_COMPILED"
#: Where ``make compiled`` puts the build (beside the sources; not in git).
ROOT = Path(__file__).resolve().parent / "_compiled"
MANIFEST = "manifest.json"
#: The source tree the build compiles.
MODEL = Path(__file__).resolve().parent / "model"


def wanted() -> bool:
    """Whether ``$SVASIM_COMPILED`` asks for the compiled model ("1"; "" or "0": not)."""
    value = os.environ.get(ENV, "").strip()
    if value not in ("", "0", "1"):
        log.warning("%s must be 0 or 1, got %r; the interpreted model is used", ENV, value)
        return False
    return value == "1"


def sources() -> dict[str, str]:
    """The modules a build compiles, by path under ``src/svasim``, with their SHA-256."""
    out = {}
    for path in sorted(MODEL.rglob("*.py")):
        if path != MODEL / "__init__.py":
            out[path.relative_to(MODEL.parent).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def ext_suffix() -> str:
    """The file name ending of this Python's extension modules (a build is for one Python)."""
    return str(sysconfig.get_config_var("EXT_SUFFIX"))


def stale_reason(root: Path | None = None) -> str:
    """Why the build under ``root`` (default :data:`ROOT`) cannot be used ("" when it can)."""
    return _check(ROOT if root is None else root)[0]


def _check(root: Path) -> tuple[str, dict[str, Any]]:
    """Why the build under ``root`` cannot be used ("" when it can), and its manifest."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        return "it is not built", {}
    except (OSError, ValueError) as e:
        return f"its manifest cannot be read ({e})", {}
    if manifest.get("ext_suffix") != ext_suffix():
        return f"it was built for {manifest.get('ext_suffix')}, this Python loads {ext_suffix()}", manifest
    if not (root / f"{manifest.get('shared')}{ext_suffix()}").is_file():
        return "its shared library is missing", manifest
    built, now = manifest.get("sources", {}), sources()
    changed = sorted(set(built) ^ set(now) | {m for m in built.keys() & now.keys() if built[m] != now[m]})
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        return f"svasim/{changed[0]}{more} changed since it was built", manifest
    return "", manifest


@functools.cache
def usable() -> bool:
    """Whether the compiled model is asked for and matches the sources (decided once per
    process, which then loads the build's shared library)."""
    if not wanted():
        return False
    reason, manifest = _check(ROOT)
    if reason:
        log.warning("%s=1, but the compiled model is not used: %s; run `make compiled`", ENV, reason)
        return False
    _load_shared(ROOT, manifest["shared"])
    return True


def _load_shared(root: Path, name: str) -> None:
    """Load the build's shared library ``name`` (every compiled module imports it by
    name) from its file: ``root`` itself goes on no path, since its ``svasim/`` directory
    would hide the real package from a process that has not imported it yet."""
    spec = importlib.util.spec_from_file_location(name, root / f"{name}{ext_suffix()}")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name} from {root}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def activate(path: list[str]) -> None:
    """Put the build's ``svasim/model`` first on ``path`` (``svasim.model.__path__``) when
    the compiled model is used; the model's ``__init__`` calls this before anything of it
    is imported."""
    if usable():
        path.insert(0, str(ROOT / "svasim" / "model"))


def active() -> bool:
    """Whether the model's modules loaded in this process are the compiled ones."""
    import svasim.model.accel

    return not str(svasim.model.accel.__file__).endswith(".py")
