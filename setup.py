"""Package discovery across the project's three source roots (metadata is in pyproject.toml).

The import package ``svasim`` lives in ``src/``, the client library ``svasim_client``
in ``clients/python/`` and the Alembic migrations (``svasim_migrations``) in ``migrations/``.
"""

from setuptools import find_packages, setup

packages = (
    find_packages("src", include=["svasim*"])
    + find_packages("clients/python", include=["svasim_client*"])
    + ["svasim_migrations", "svasim_migrations.versions"]
)
package_dir = {
    "svasim": "src/svasim",
    "svasim_client": "clients/python/svasim_client",
    "svasim_migrations": "migrations",
}
setup(packages=packages, package_dir=package_dir)
