"""The three-process fabric (``svasim serve`` x3, as an operator starts it) works end to
end with mutual TLS between the processes and TLS for clients; plaintext gets nowhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from svasim.wiring.tls import make_test_ca
from svasim_api import idxd
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import Client, SvasimError, memmove_descriptor

from ..services.fabric_fixtures import free_ports


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "svasim.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def tls_client(address: str, ca: Path) -> Client:
    creds = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    return Client(address, channel=grpc.secure_channel(address, creds))


@pytest.fixture
def tls_split_fabric(tmp_path):
    files = make_test_ca(tmp_path / "ca", ["localhost", "127.0.0.1"])
    chosen = free_ports(6)
    ports = dict(zip(("cpu", "iommu", "accel"), chosen[:3], strict=True))
    peer_ports = dict(zip(("cpu", "iommu", "accel"), chosen[3:], strict=True))
    # Everything by environment, as a container would be configured.
    env = {f"SVASIM_{n.upper()}_ADDR": f"127.0.0.1:{p}" for n, p in peer_ports.items()}
    env |= {
        "SVASIM_PEER_TLS_CERT": str(files["peer"]),
        "SVASIM_PEER_TLS_KEY": str(files["peer-key"]),
        "SVASIM_PEER_TLS_CA": str(files["ca"]),
        "SVASIM_TLS_CERT": str(files["server"]),
        "SVASIM_TLS_KEY": str(files["server-key"]),
        "SVASIM_DB": f"sqlite:///{tmp_path / 'split.db'}",
        "SVASIM_RUN": "tls-split",
    }
    procs = {}
    try:
        for name, services in (("iommu", "iommu"), ("accel", "accel"), ("cpu", "cpu,trace")):
            procs[name] = start(
                ["serve", "--services", services, "--port", str(ports[name]), "--peer-port", str(peer_ports[name])],
                env,
            )
        for name, p in procs.items():
            with tls_client(f"127.0.0.1:{ports[name]}", files["ca"]) as c:
                try:
                    c.wait_ready(30)
                except Exception:
                    p.kill()
                    raise AssertionError(p.communicate()[1]) from None
        yield ports, peer_ports, files, procs
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            p.wait(30)
            p.communicate()


def test_the_split_fabric_runs_the_enqcmd_path_over_tls_and_refuses_plaintext(tls_split_fabric):
    ports, peer_ports, files, procs = tls_split_fabric
    with tls_client(f"127.0.0.1:{ports['cpu']}", files["ca"]) as c:
        proc = c.create_process("app")
        buf = c.mmap(proc.pid, 3 * 4096, populate=True)
        comp = c.mmap(proc.pid, 4096, populate=True)
        wq = c.open_wq(proc.pid, "dsa0", 0)
        tid = proc.tids[0]
        c.schedule(tid, 0)
        data = os.urandom(4096)
        c.write(proc.pid, buf, data)
        r = c.enqcmd(tid, wq.portal_address, memmove_descriptor(buf, buf + 8192, len(data), comp))
        assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED and r.pasid_sent == wq.pasid
        w = c.wait_completion(tid, comp)
        assert w.completed and w.record.status == idxd.DsaCompStatus.SUCCESS
        # The copy went cpu -> accel -> iommu -> cpu memory and back, all over mTLS.
        assert c.read(proc.pid, buf + 8192, len(data)) == data
        c.flush()
        services = {e.service for e in c.events(c.fabric().run_id)}
        assert services == {"cpu", "iommu", "accel"}
    for port in (*ports.values(), *peer_ports.values()):
        with Client(f"127.0.0.1:{port}", timeout=5) as plain, pytest.raises(SvasimError) as e:
            plain.fabric()
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
    for name, p in procs.items():
        assert p.poll() is None, (name, p.stderr)
