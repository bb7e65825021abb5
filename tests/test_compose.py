"""docker-compose.yml and the Dockerfile agree with what `svasim serve` accepts."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main
import yaml

from svasim.cli import app
from svasim.config import ALL_SERVICES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SVC = COMPOSE["services"]


def parse(args: list[str]):
    """Parse a command line with the real CLI, without running it; returns the leaf context."""
    cmd = typer.main.get_command(app)
    ctx = None
    args = list(args)
    while hasattr(cmd, "get_command"):
        name, args = args[0], args[1:]
        parent = cmd.context_class(cmd, info_name=cmd.name or "svasim", parent=ctx)
        sub = cmd.get_command(parent, name)
        assert sub is not None, f"no command {name!r}"
        ctx, cmd = parent, sub
    return cmd.make_context(cmd.name, args, parent=ctx)


def test_every_container_command_is_a_valid_svasim_command():
    for name, svc in SVC.items():
        if name == "postgres":
            continue
        parse(svc["command"])


def test_one_container_per_service_and_their_ports_match_the_peer_addresses():
    env = SVC["cpu"]["environment"]
    hosted = {}
    for name in ("cpu", "iommu", "accel"):
        ctx = parse(SVC[name]["command"])
        services = ctx.params["services"].split(",")
        for s in services:
            hosted[s] = ctx.params["port"]
        assert SVC[name]["network_mode"] == "host"
        assert "healthcheck" in SVC[name]
        assert str(ctx.params["port"]) in " ".join(SVC[name]["healthcheck"]["test"])
    assert set(hosted) == set(ALL_SERVICES)
    for s in ("cpu", "iommu", "accel"):
        assert env[f"SVASIM_{s.upper()}_ADDR"].endswith(f":{hosted[s]}")


def test_services_wait_for_migrations_and_migrations_for_postgres():
    for name in ("cpu", "iommu", "accel"):
        assert SVC[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SVC["migrate"]["command"] == ["db", "upgrade"]
    assert SVC["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    pg_port = SVC["postgres"]["command"][SVC["postgres"]["command"].index("-p") + 1]
    assert f":{pg_port}/" in SVC["cpu"]["environment"]["SVASIM_DB"]


def test_every_environment_variable_used_is_documented():
    readme = (ROOT / "README.md").read_text()
    used = set(re.findall(r"SVASIM_[A-Z_]+", (ROOT / "docker-compose.yml").read_text()))
    used |= set(re.findall(r"SVASIM_[A-Z_]+", (ROOT / "src/svasim/config.py").read_text()))
    compose_only = {"SVASIM_BASE_IMAGE", "SVASIM_TAG", "SVASIM_POSTGRES_IMAGE"}
    missing = sorted(v for v in used - compose_only if v not in readme)
    assert missing == []


def test_dockerfile_takes_its_base_image_as_a_build_argument():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", text, re.M)
    assert SVC["cpu"]["build"]["args"]["BASE_IMAGE"].startswith("${SVASIM_BASE_IMAGE")
