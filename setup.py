"""Package discovery across the server's two source roots (metadata is in pyproject.toml).

The import package ``svasim`` lives in ``src/`` and the Alembic migrations
(``svasim_migrations``) in ``migrations/``. The API package ``svasim_api`` and the client
``svasim_client`` are the separate distribution ``svasim-client`` in ``clients/python/``.
"""

from setuptools import find_packages, setup

packages = find_packages("src", include=["svasim*"]) + ["svasim_migrations", "svasim_migrations.versions"]
package_dir = {"svasim": "src/svasim", "svasim_migrations": "migrations"}
setup(packages=packages, package_dir=package_dir)
