"""Listeners: a port in use or out of range is a clear error that creates nothing, and a
start that fails half way releases what it had opened."""

from __future__ import annotations

import socket
import threading

import pytest

from svasim.config import ALL_SERVICES, ConfigError, FabricConfig
from svasim.server import BindError, create_server
from svasim.store import Store

from .fabric_fixtures import connect, free_port


def runs_in(db: str) -> int:
    store = Store.open(db)
    try:
        return len(store.list_runs())
    finally:
        store.close()


def test_a_port_held_by_another_program_is_a_one_line_error_and_creates_no_run(tmp_path):
    db = f"sqlite:///{tmp_path / 'svasim.db'}"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(BindError) as e:
            create_server(FabricConfig(services=ALL_SERVICES, port=port, db=db))
    assert str(port) in str(e.value) and "\n" not in str(e.value)
    assert runs_in(db) == 0


def test_a_second_server_on_a_port_svasim_uses_is_refused_not_shared(tmp_path):
    db = f"sqlite:///{tmp_path / 'svasim.db'}"
    first = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db))
    try:
        with pytest.raises(BindError):
            create_server(FabricConfig(services=ALL_SERVICES, port=first.port, db=db))
        assert runs_in(db) == 1
        # The first one still answers, alone on its port.
        with connect(first.address) as c:
            assert c.create_process("a").pid > 0
    finally:
        first.stop(0)


def test_a_peer_port_in_use_is_refused_too_before_anything_is_created(tmp_path):
    db = f"sqlite:///{tmp_path / 'svasim.db'}"
    first = create_server(FabricConfig(services=ALL_SERVICES, port=0, peer_port=0, db=db))
    try:
        port = free_port()
        with pytest.raises(BindError) as e:
            create_server(FabricConfig(services=ALL_SERVICES, port=port, peer_port=first.peer_port, db=db))
        assert "peer" in str(e.value)
        assert runs_in(db) == 1
        # The client port the failed start had bound is free again.
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    finally:
        first.stop(0)


@pytest.mark.parametrize("field", ["port", "peer_port"])
@pytest.mark.parametrize("value", [-1, 65536, 70000])
def test_port_numbers_out_of_range_are_refused(tmp_path, field, value):
    db = f"sqlite:///{tmp_path / 'svasim.db'}"
    with pytest.raises(ConfigError) as e:
        create_server(FabricConfig(services=ALL_SERVICES, db=db, **{field: value}))
    assert str(value) in str(e.value) and "65535" in str(e.value)
    assert not (tmp_path / "svasim.db").exists()


def test_a_start_that_fails_after_opening_the_store_releases_it_and_the_ports(tmp_path, monkeypatch):
    import svasim.server

    def broken(*args, **kwargs):
        raise RuntimeError("no cores today")

    monkeypatch.setattr(svasim.server, "build_cores", broken)
    port = free_port()
    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(RuntimeError, match="no cores today"):
        create_server(FabricConfig(services=ALL_SERVICES, port=port, db=f"sqlite:///{tmp_path / 'svasim.db'}"))
    # No recorder thread left writing, and the port can be bound again.
    assert {t.ident for t in threading.enumerate() if t.is_alive()} <= before
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_the_embedded_fabric_has_no_peer_listener_and_a_split_process_has_one(tmp_path):
    db = f"sqlite:///{tmp_path / 'svasim.db'}"
    alone = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db))
    try:
        assert alone.peer_server is None and alone.peer_address == ""
    finally:
        alone.stop(0)
    assert FabricConfig(services=("cpu",), peers={"iommu": "x:1", "accel": "y:2"}).peer_listener_port() == 50052


def test_a_peer_listener_beyond_loopback_needs_mtls_or_an_explicit_insecure_choice(tmp_path):
    cfg = FabricConfig(services=ALL_SERVICES, port=0, peer_port=0, peer_host="0.0.0.0")
    with pytest.raises(ConfigError, match="peer-insecure"):
        cfg.check()
    FabricConfig(services=ALL_SERVICES, port=0, peer_port=0, peer_host="0.0.0.0", peer_insecure=True).check()


def test_tls_files_go_together_and_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="go together"):
        FabricConfig(peer_tls_cert="a.pem").check()
    with pytest.raises(ConfigError, match="no such file"):
        FabricConfig(tls_cert=str(tmp_path / "c.pem"), tls_key=str(tmp_path / "k.pem")).check()


@pytest.mark.parametrize(
    ("name", "value"),
    [("SVASIM_PORT", "abc"), ("SVASIM_PEER_PORT", "x1"), ("SVASIM_EARLY_FREE", "yes"), ("SVASIM_GRACE", "soon")],
)
def test_bad_environment_values_are_config_errors_naming_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as e:
        FabricConfig.from_env()
    assert name in str(e.value) and value in str(e.value)


def test_the_environment_sets_the_listeners(monkeypatch):
    for k, v in {
        "SVASIM_PEER_PORT": "50999",
        "SVASIM_PEER_HOST": "::1",
        "SVASIM_PEER_TLS_CERT": "p.pem",
        "SVASIM_PEER_TLS_KEY": "p-key.pem",
        "SVASIM_PEER_TLS_CA": "ca.pem",
        "SVASIM_TLS_CERT": "s.pem",
        "SVASIM_TLS_KEY": "s-key.pem",
        "SVASIM_PEER_INSECURE": "1",
    }.items():
        monkeypatch.setenv(k, v)
    cfg = FabricConfig.from_env()
    assert (cfg.peer_port, cfg.peer_host, cfg.peer_insecure) == (50999, "::1", True)
    assert (cfg.peer_tls_cert, cfg.peer_tls_key, cfg.peer_tls_ca) == ("p.pem", "p-key.pem", "ca.pem")
    assert (cfg.tls_cert, cfg.tls_key) == ("s.pem", "s-key.pem")


def test_a_peer_listener_on_ipv6_loopback_is_addressed_in_brackets(tmp_path):
    srv = create_server(
        FabricConfig(services=ALL_SERVICES, port=0, peer_port=0, peer_host="::1", db=f"sqlite:///{tmp_path / 'x.db'}")
    )
    try:
        assert srv.peer_address == f"[::1]:{srv.peer_port}"
        with connect(srv.peer_address) as c:
            assert c.check_health("svasim.cpu.v1.HostMemoryService") == "SERVING"
    finally:
        srv.stop(0)
