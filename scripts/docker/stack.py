#!/usr/bin/env python3
"""Build the images of svasim's docker-compose stack, and bring the stack up or down.

    python3 scripts/docker/stack.py images    # every image the stack needs
    python3 scripts/docker/stack.py up        # the images, then compose up, until every service is healthy
    python3 scripts/docker/stack.py down -v   # stop the stack (-v: drop its PostgreSQL volume too)
    python3 scripts/docker/stack.py env       # exports that let plain docker-compose use the images built here

Base images come from the public registry (python:3.11-slim, postgres:16) when it can be
reached. Where it cannot, they are built here from Debian's own packages: a debootstrap of
the host's Debian release from the host's apt mirror, imported as ``svasim/debian:SUITE``;
Debian's python3 (the project installs into a venv, since Debian's pip refuses system
installs under PEP 668); and Debian's PostgreSQL with an entrypoint that honours the
official image's POSTGRES_* variables. ``--base local`` or ``--base public`` forces a choice.

The build of the svasim image runs on host networking and gets the host's pip settings (the
package index and the CA bundle pip trusts) through ``scripts/docker/host/``, written here
at build time and ignored by git; only the Dockerfile's build stage reads it.

Only the standard library is used, so the host's python3 runs it without the project's venv.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
HOST_DIR = HERE / "host"
PUBLIC_PYTHON = "python:3.11-slim"
PUBLIC_POSTGRES = "postgres:16"
#: The services whose health gates the stack, with the port each serves on (docker-compose.yml).
SERVICE_PORTS = {"cpu": 50051, "iommu": 50052, "accel": 50053}
POSTGRES_PORT = 55432


class StackError(RuntimeError):
    """A step of the build or bring-up failed; the message says which and why."""


def log(message: str) -> None:
    """Progress on stderr, so that stdout stays for what a caller may parse (``env``)."""
    print(f"stack: {message}", file=sys.stderr, flush=True)


def run(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True, **kw: object
) -> subprocess.CompletedProcess:
    """Run a command, echoed first; a failure raises StackError naming the command (unless not ``check``)."""
    log("$ " + shlex.join(cmd))
    try:
        return subprocess.run(cmd, check=check, env=env, **kw)  # type: ignore[call-overload]
    except FileNotFoundError as e:
        raise StackError(f"{cmd[0]} is not installed") from e
    except subprocess.CalledProcessError as e:
        raise StackError(f"{shlex.join(cmd)} exited with {e.returncode}") from e


def quiet(cmd: Sequence[str], timeout: float = 60) -> bool:
    """True when a command succeeds; its output is discarded."""
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


# --- the engine --------------------------------------------------------------------------


def engine_running() -> bool:
    """Whether a Docker engine answers the docker CLI."""
    return quiet(["docker", "info"], timeout=30)


def install_engine() -> None:
    """Debian's engine, compose v1 and debootstrap, through apt (needs root)."""
    if os.geteuid() != 0:
        raise StackError("no Docker engine is installed and installing one needs root")
    if not shutil.which("apt-get"):
        raise StackError("no Docker engine is installed and this is not a Debian-like host (no apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Wait for another apt run to finish rather than fail on its lock.
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    run(["apt-get", *lock, "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    run(
        ["apt-get", *lock, "install", "-y", "-q", "docker.io", "docker-compose", "debootstrap"],
        env=env,
        stdout=subprocess.DEVNULL,
    )


def start_engine(log_path: Path, timeout: float = 90) -> subprocess.Popen:
    """Start dockerd in the background and wait until it answers; returns its process.

    No iptables rules and no bridge: every container of the stack uses host networking,
    and a sandboxed host may not allow either.
    """
    if not shutil.which("dockerd"):
        install_engine()
    if os.geteuid() != 0:
        raise StackError("no Docker engine runs and starting dockerd needs root")
    out = open(log_path, "ab")  # noqa: SIM115 - owned by the daemon for its lifetime
    proc = subprocess.Popen(
        ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none"],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"dockerd exited with {proc.returncode}; see {log_path}")
        if engine_running():
            log(f"dockerd {proc.pid} is up (log {log_path})")
            return proc
        time.sleep(1)
    stop_engine(proc)
    raise StackError(f"dockerd did not answer within {timeout:.0f}s; see {log_path}")


def stop_engine(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Stop a dockerd that start_engine started (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def compose_command() -> list[str]:
    """``docker compose`` (v2) where the plugin is present, else ``docker-compose`` (v1).

    SVASIM_COMPOSE names another one (e.g. "docker-compose" to force v1).
    """
    chosen = os.environ.get("SVASIM_COMPOSE", "")
    if chosen:
        return shlex.split(chosen)
    if quiet(["docker", "compose", "version"]):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise StackError("neither `docker compose` nor `docker-compose` is installed")


# --- base images -------------------------------------------------------------------------


def image_exists(name: str) -> bool:
    """Whether the engine has the image locally."""
    return quiet(["docker", "image", "inspect", name])


def can_pull(name: str) -> bool:
    """Whether the image is here or can be pulled now (a registry that cannot be reached fails fast)."""
    if image_exists(name):
        return True
    log(f"pulling {name}")
    return quiet(["docker", "pull", "-q", name], timeout=600)


def host_release() -> tuple[str, str]:
    """(ID, VERSION_CODENAME) of the host, from /etc/os-release."""
    fields: dict[str, str] = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value.strip().strip('"')
    return fields.get("ID", ""), fields.get("VERSION_CODENAME", "")


def apt_sources(apt: Path = Path("/etc/apt")) -> list[tuple[str, list[str], list[str]]]:
    """The host's binary apt sources as (URI, suites, components), one-line and deb822 alike."""
    found: list[tuple[str, list[str], list[str]]] = []
    one_line = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                found.append((words[1], [words[2]], words[3:]))
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                found.append((uri, fields.get("suites", "").split(), fields.get("components", "").split()))
    return found


def debian_mirror(suite: str, apt: Path = Path("/etc/apt")) -> str:
    """The host's apt mirror of ``suite`` main (SVASIM_DEBIAN_MIRROR overrides it)."""
    mirror = os.environ.get("SVASIM_DEBIAN_MIRROR", "")
    if mirror:
        return mirror
    for uri, suites, components in apt_sources(apt):
        if suite in suites and "main" in components:
            return uri
    raise StackError(f"the host's apt sources have no mirror of Debian {suite} main; set SVASIM_DEBIAN_MIRROR to one")


def build_debian(suite: str) -> str:
    """svasim/debian:SUITE: a minimal Debian, debootstrapped from the host's mirror and imported."""
    tag = f"svasim/debian:{suite}"
    if image_exists(tag):
        log(f"{tag} is already built")
        return tag
    if not shutil.which("debootstrap"):
        install_engine()
    mirror = debian_mirror(suite)
    with tempfile.TemporaryDirectory(prefix="svasim-debootstrap-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            ["debootstrap", "--variant=minbase", "--include=ca-certificates", suite, str(rootfs), mirror],
            stdout=subprocess.DEVNULL,
        )
        # Downloaded packages and index files would only make the image larger.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        run(
            ["docker", "import", "--change", 'CMD ["/bin/bash"]', "-", tag], stdin=tar.stdout, stdout=subprocess.DEVNULL
        )
        if tar.wait() != 0:
            raise StackError(f"tar of {rootfs} exited with {tar.returncode}")
    return tag


def docker_build(tag: str, dockerfile: Path, context: Path, args: dict[str, str]) -> None:
    """``docker build`` on host networking (the only network a build has on a host without a bridge)."""
    cmd = ["docker", "build", "--force-rm", "--network", "host", "-f", str(dockerfile), "-t", tag]
    for k, v in args.items():
        cmd += ["--build-arg", f"{k}={v}"]
    run([*cmd, str(context)])


def local_python(suite: str) -> str:
    """svasim/python3:SUITE: Debian's python3 with venv."""
    tag = f"svasim/python3:{suite}"
    docker_build(tag, HERE / "python.Dockerfile", HERE, {"DEBIAN_IMAGE": build_debian(suite)})
    return tag


def local_postgres(suite: str) -> str:
    """svasim/postgresql:SUITE: Debian's PostgreSQL with an official-image-like entrypoint."""
    tag = f"svasim/postgresql:{suite}"
    docker_build(tag, HERE / "postgres.Dockerfile", HERE, {"DEBIAN_IMAGE": build_debian(suite)})
    return tag


# --- the host's pip settings -------------------------------------------------------------

#: pip settings that say where packages come from and how to reach it; the rest (local
#: wheel folders, constraint files) names paths of the host that a build does not have.
PIP_KEYS = ("index-url", "extra-index-url", "trusted-host", "timeout", "default-timeout", "retries", "proxy")


def host_pip_settings() -> dict[str, str]:
    """The host's pip configuration (files and PIP_* variables) as key -> value."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    settings: dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"^[^.]*\.([a-z-]+)='(.*)'$", line)
        if m:
            settings[m.group(1)] = m.group(2)
    return settings


def build_pip_config(settings: dict[str, str]) -> configparser.ConfigParser:
    """The part of the host's pip settings that holds inside a build (no cert: see write_host_pip_config)."""
    conf = configparser.ConfigParser()
    conf["global"] = {}
    for key in PIP_KEYS:
        value = settings.get(key, "")
        # Indexes on the host's own disk (file://) do not exist inside the build.
        kept = " ".join(u for u in value.split() if not u.startswith("file:"))
        if kept:
            conf["global"][key] = kept
    return conf


def write_host_pip_config() -> None:
    """scripts/docker/host/{pip.conf,ca.pem}: where pip in the build finds packages and whom it trusts."""
    HOST_DIR.mkdir(exist_ok=True)
    settings = host_pip_settings()
    conf = build_pip_config(settings)
    bundle = next(
        (
            Path(c)
            for c in (
                settings.get("cert", ""),
                os.environ.get("SSL_CERT_FILE", ""),
                os.environ.get("REQUESTS_CA_BUNDLE", ""),
                "/etc/ssl/certs/ca-certificates.crt",
            )
            if c and Path(c).is_file()
        ),
        None,
    )
    ca = HOST_DIR / "ca.pem"
    if bundle is not None:
        shutil.copyfile(bundle, ca)
        conf["global"]["cert"] = "/tmp/host/ca.pem"
    elif ca.exists():
        ca.unlink()
    with open(HOST_DIR / "pip.conf", "w") as f:
        f.write("# Written by scripts/docker/stack.py from the building host's pip settings; not committed.\n")
        conf.write(f)


# --- the stack ---------------------------------------------------------------------------


def debian_suite() -> str:
    """The Debian release the local stand-ins are built from: SVASIM_DEBIAN_SUITE, else the host's."""
    distro, codename = host_release()
    return os.environ.get("SVASIM_DEBIAN_SUITE", "") or (codename if distro == "debian" and codename else "bookworm")


def built_images(tag: str = "") -> dict[str, str]:
    """The compose variables naming images already here (public ones first), building nothing."""
    suite = debian_suite()
    env = {"SVASIM_TAG": tag or os.environ.get("SVASIM_TAG", "") or "latest"}
    for var, public, local in (
        ("SVASIM_BASE_IMAGE", PUBLIC_PYTHON, f"svasim/python3:{suite}"),
        ("SVASIM_POSTGRES_IMAGE", PUBLIC_POSTGRES, f"svasim/postgresql:{suite}"),
    ):
        env[var] = os.environ.get(var) or (local if not image_exists(public) and image_exists(local) else public)
    return env


def build_images(base: str = "auto", tag: str = "") -> dict[str, str]:
    """Build every image of the stack; returns the compose variables that name them."""
    tag = tag or os.environ.get("SVASIM_TAG", "") or "latest"
    suite = debian_suite()
    env = {"SVASIM_TAG": tag}
    for var, public, local in (
        ("SVASIM_BASE_IMAGE", PUBLIC_PYTHON, local_python),
        ("SVASIM_POSTGRES_IMAGE", PUBLIC_POSTGRES, local_postgres),
    ):
        if os.environ.get(var):
            env[var] = os.environ[var]
        elif base == "public" or (base == "auto" and can_pull(public)):
            env[var] = public
        else:
            if base == "auto":
                log(f"{public} cannot be pulled: building a local stand-in from Debian {suite}")
            env[var] = local(suite)
    write_host_pip_config()
    docker_build(f"svasim:{tag}", ROOT / "Dockerfile", ROOT, {"BASE_IMAGE": env["SVASIM_BASE_IMAGE"]})
    return env


def compose(args: Sequence[str], env: dict[str, str], project: str = "", **kw: object) -> subprocess.CompletedProcess:
    """Run compose on the project's docker-compose.yml with the image variables in ``env``."""
    cmd = [*compose_command(), "-f", str(ROOT / "docker-compose.yml")]
    if project:
        cmd += ["-p", project]
    return run([*cmd, *args], env={**os.environ, **env}, **kw)


def container_health(project: str, service: str, env: dict[str, str]) -> str:
    """The health status of a compose service's container ("healthy", "starting", ...; "" if none)."""
    ids = compose(["ps", "-q", service], env, project, capture_output=True, text=True).stdout.split()
    if not ids:
        return ""
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", ids[0]],
        capture_output=True,
        text=True,
    ).stdout.split()
    if not out:
        return ""
    return out[1] if len(out) > 1 else out[0]


def wait_healthy(
    project: str, env: dict[str, str], services: Sequence[str] = tuple(SERVICE_PORTS), timeout: float = 300
) -> None:
    """Wait until every named service's container reports healthy."""
    deadline = time.monotonic() + timeout
    status: dict[str, str] = {}
    while time.monotonic() < deadline:
        status = {s: container_health(project, s, env) for s in services}
        if all(v == "healthy" for v in status.values()):
            return
        if any(v in ("unhealthy", "exited", "dead") for v in status.values()):
            break
        time.sleep(2)
    raise StackError(f"services not healthy: {status}; see `docker-compose logs`")


def ports_in_use() -> list[int]:
    """Ports of the stack that something on the host already listens on."""
    busy = []
    for port in (*SERVICE_PORTS.values(), POSTGRES_PORT):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


def up(env: dict[str, str], project: str = "") -> None:
    """compose up -d, then wait until cpu, iommu and accel are healthy."""
    busy = ports_in_use()
    if busy:
        raise StackError(f"ports {busy} are already in use on 127.0.0.1; the stack needs them (host networking)")
    compose(["up", "-d", "--no-build"], env, project)
    wait_healthy(project, env)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(prog="stack.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("-p", "--project", default="", help="compose project name (default: the folder's)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("images", "up", "env"):
        p = sub.add_parser(name)
        p.add_argument("--tag", default="", help="tag of the svasim image (SVASIM_TAG, default latest)")
        if name != "env":
            p.add_argument(
                "--base",
                choices=("auto", "local", "public"),
                default=os.environ.get("SVASIM_IMAGES", "auto"),
                help="base images: public ones if pullable (auto), public only, or always built here (local)",
            )
    down = sub.add_parser("down")
    down.add_argument("-v", "--volumes", action="store_true", help="also remove the PostgreSQL volume")
    args = parser.parse_args(argv)
    try:
        if args.command == "down":
            compose(["down", "--remove-orphans", *(["-v"] if args.volumes else [])], {}, args.project)
            return 0
        if not engine_running():
            raise StackError("no Docker engine answers; start one (dockerd --iptables=false --bridge=none)")
        env = built_images(args.tag) if args.command == "env" else build_images(args.base, args.tag)
        if args.command == "up":
            up(env, args.project)
            log("the stack is healthy: cpu+trace 127.0.0.1:50051, iommu :50052, accel :50053, PostgreSQL :55432")
        for k, v in env.items():
            print(f"export {k}={shlex.quote(v)}")
    except StackError as e:
        print(f"stack: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
