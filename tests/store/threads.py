"""Running test code in threads so that a failure in a thread fails the test.

An exception in a plain ``threading.Thread`` only reaches pytest as a warning; here each
worker runs as a future whose result is collected, so its exception is raised again in
the test's own thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def in_threads(fn: Callable[..., Any], args: Iterable[tuple[Any, ...]]) -> list[Any]:
    """Run ``fn(*a)`` for every ``a`` in ``args``, all at once, each in its own thread.

    Returns the results in order; re-raises the first exception a worker raised, after
    all of them have ended.
    """
    calls = list(args)
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(fn, *a) for a in calls]
    return [f.result() for f in futures]
