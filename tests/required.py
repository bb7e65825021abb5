"""What a test needs from the machine: missing in CI it fails (CI must not silently stop
testing it), elsewhere it is skipped."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(failure: str, skip: str) -> NoReturn:
    """The test cannot run: fail with ``failure`` when ``$CI`` is ``true``, else skip with ``skip``."""
    if os.environ.get("CI") == "true":
        pytest.fail(failure, pytrace=False)
    pytest.skip(skip)
