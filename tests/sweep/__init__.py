"""Tests of svasim.sweep: definitions, generated workloads, the PASID breakdown, the Dask runner."""
