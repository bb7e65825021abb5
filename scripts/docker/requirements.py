#!/usr/bin/env python3
"""Print the runtime dependencies of the given pyproject.toml files, one per line.

The distributions those files define are left out (they are installed from the source
tree afterwards), so the Dockerfile can install the dependencies in a layer of their own
that a change of the sources does not rebuild.
"""

from __future__ import annotations

import re
import sys
import tomllib


def dependencies(paths: list[str]) -> list[str]:
    """Runtime requirements of the projects at ``paths``, minus those projects themselves."""
    projects = []
    for path in paths:
        with open(path, "rb") as f:
            projects.append(tomllib.load(f)["project"])
    local = {re.sub(r"[-_.]+", "-", p["name"]).lower() for p in projects}
    out: list[str] = []
    for project in projects:
        for req in project.get("dependencies", []):
            name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", req).group(0)).lower()
            if name not in local and req not in out:
                out.append(req)
    return out


if __name__ == "__main__":
    print("\n".join(dependencies(sys.argv[1:])))
