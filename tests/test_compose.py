"""docker-compose.yml and the Dockerfile agree with what `svasim serve` accepts and with each other.

These read the files only; tests/compose/test_stack.py brings the stack up on a real engine.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer.main
import yaml

from svasim.cli import app
from svasim.config import ALL_SERVICES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SVC = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
MODEL_SERVICES = ("cpu", "iommu", "accel")


def defaults(value: str) -> str:
    """A compose value with every ``${VAR:-default}`` replaced by its default (no variable set)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


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


def test_one_container_per_service_and_the_peer_addresses_name_their_peer_ports():
    env = SVC["cpu"]["environment"]
    hosted, peer_ports, client_ports = {}, {}, set()
    for name in MODEL_SERVICES:
        ctx = parse(SVC[name]["command"])
        for s in ctx.params["services"].split(","):
            hosted[s] = name
        peer_ports[name] = ctx.params["peer_port"]
        client_ports.add(ctx.params["port"])
        assert SVC[name]["network_mode"] == "host"
        # The health check asks the container's own client listener, with the script the image ships.
        assert SVC[name]["healthcheck"]["test"] == [
            "CMD",
            "python",
            "/opt/svasim/healthcheck.py",
            f"127.0.0.1:{ctx.params['port']}",
        ]
    assert re.search(r"^COPY scripts/docker/healthcheck.py /opt/svasim/healthcheck.py$", DOCKERFILE, re.M)
    assert set(hosted) == set(ALL_SERVICES)
    # On host networking every listener of every container needs a port of its own.
    assert len(client_ports | set(peer_ports.values())) == 2 * len(MODEL_SERVICES)
    for s in MODEL_SERVICES:
        assert env[f"SVASIM_{s.upper()}_ADDR"] == f"127.0.0.1:{peer_ports[hosted[s]]}"


def test_services_wait_for_migrations_and_migrations_for_a_healthy_postgres():
    for name in MODEL_SERVICES:
        assert SVC[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert SVC[name]["command"][0] == "serve"
        # The schema is migrated once, by `migrate`.
        assert SVC[name]["environment"]["SVASIM_MIGRATE"] == "0"
    assert SVC["migrate"]["healthcheck"] == {"disable": True}
    assert SVC["migrate"]["command"] == ["db", "upgrade"]
    assert SVC["migrate"]["restart"] == "no"
    assert SVC["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert SVC["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


def test_the_store_url_defaults_to_the_composed_postgres_and_can_be_overridden():
    pg_cmd = SVC["postgres"]["command"]
    pg_port = pg_cmd[pg_cmd.index("-p") + 1]
    # Not PostgreSQL's own 5432: one may already run on the host, and host networking shares ports.
    assert pg_port != "5432"
    for name in ("migrate", *MODEL_SERVICES):
        url = SVC[name]["environment"]["SVASIM_DB"]
        assert url.startswith("${SVASIM_DB:-")
        assert f"@127.0.0.1:{pg_port}/{SVC['postgres']['environment']['POSTGRES_DB']}" in defaults(url)
    assert pg_port in SVC["postgres"]["healthcheck"]["test"]


def test_builds_use_host_networking_and_the_base_image_argument():
    build = SVC["cpu"]["build"]
    assert build["network"] == "host"
    assert build["args"]["BASE_IMAGE"].startswith("${SVASIM_BASE_IMAGE:-")
    assert re.search(r"^ARG BASE_IMAGE=\S+", DOCKERFILE, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS build$", DOCKERFILE, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", DOCKERFILE, re.M)


def test_the_image_listens_on_every_interface_and_compose_on_loopback_only():
    # `docker run -p` forwards to the container's own interface, which 127.0.0.1 is not.
    env_lines = " ".join(re.findall(r"^ENV (.*)$", DOCKERFILE, re.M))
    assert "SVASIM_HOST=0.0.0.0" in env_lines.split()
    for name in MODEL_SERVICES:
        assert SVC[name]["environment"]["SVASIM_HOST"] == "127.0.0.1"
        assert SVC[name]["environment"]["SVASIM_PEER_HOST"] == "127.0.0.1"


def test_every_variable_the_compose_file_names_is_one_it_uses():
    set_in_env = {k for svc in SVC.values() for k in svc.get("environment", {})}
    interpolated = set(re.findall(r"\$\{(SVASIM_[A-Z_]+)", COMPOSE_TEXT))
    named = set(re.findall(r"SVASIM_[A-Z_]+", COMPOSE_TEXT))
    assert sorted(named - set_in_env - interpolated) == []


def undocumented(*paths: str) -> list[str]:
    """SVASIM_* variables named in the files at ``paths`` that README.md does not mention."""
    readme = (ROOT / "README.md").read_text()
    used = {v for p in paths for v in re.findall(r"SVASIM_[A-Z_]+", (ROOT / p).read_text())}
    return sorted(v for v in used if not re.search(rf"\b{v}\b", readme))


def test_every_variable_of_the_compose_file_and_its_script_is_documented():
    assert undocumented("docker-compose.yml", "scripts/docker/stack.py") == []


def test_every_variable_a_svasim_process_reads_is_documented():
    assert undocumented("src/svasim/config.py") == []


def test_the_build_context_keeps_out_what_is_built_locally_and_lets_in_the_host_settings():
    ignored = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip()[:1] not in "#"]
    for pattern in (".git", ".venv", "**/node_modules", "**/*.egg-info"):
        assert pattern in ignored
    assert not any("scripts" in p for p in ignored)
    # The host's pip settings are written at build time and never committed.
    gitignore = (ROOT / "scripts/docker/.gitignore").read_text().split()
    assert "host/*" in gitignore and "!host/README.md" in gitignore
