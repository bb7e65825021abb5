"""A Dask LocalCluster of two worker processes, shared by the tests of this package."""

from __future__ import annotations

import pytest

from svasim.sweep import dask_client


@pytest.fixture(scope="package")
def two_workers():
    """A client of a real two-process LocalCluster."""
    with dask_client(workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        yield client
