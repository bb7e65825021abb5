"""``python -m svasim.cli``: the ``svasim`` command."""

from svasim.cli.app import main

main()
