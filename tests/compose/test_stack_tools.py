"""The pure parts of scripts/docker: apt sources, the pip settings a build gets, its requirements."""

from __future__ import annotations

import pytest


def test_the_mirror_comes_from_deb822_and_one_line_sources_of_the_suite_main(stack, tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64] http://one-line.example/debian bookworm contrib\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n"
        "\n"
        "Types: deb deb-src\n# a comment inside the stanza\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main contrib\nSigned-By: /usr/share/keyrings/k.gpg\n"
    )
    (tmp_path / "sources.list.d" / "off.sources").write_text(
        "Enabled: no\nTypes: deb\nURIs: http://disabled.example/debian\nSuites: trixie\nComponents: main\n"
    )
    assert stack.debian_mirror("bookworm", tmp_path) == "http://mirror.example/debian"
    with pytest.raises(stack.StackError, match="SVASIM_DEBIAN_MIRROR"):
        stack.debian_mirror("trixie", tmp_path)


def test_a_build_gets_the_hosts_index_settings_but_none_of_its_local_paths(stack):
    conf = stack.build_pip_config(
        {
            "index-url": "https://index.example/simple",
            "extra-index-url": "file:///opt/pypi/simple https://extra.example/simple",
            "find-links": "/opt/wheels",
            "constraint": "/etc/xdg/pip/constraints.txt",
            "cert": "/etc/ssl/certs/ca-certificates.crt",
            "default-timeout": "180",
        }
    )
    assert dict(conf["global"]) == {
        "index-url": "https://index.example/simple",
        "extra-index-url": "https://extra.example/simple",
        "default-timeout": "180",
    }


def test_the_dependency_layer_leaves_out_the_projects_being_installed(requirements, tmp_path):
    server = tmp_path / "server.toml"
    client = tmp_path / "client.toml"
    server.write_text('[project]\nname = "srv"\ndependencies = ["Client_Lib==0.1.0", "grpcio>=1.60", "rich"]\n')
    client.write_text('[project]\nname = "client-lib"\ndependencies = ["grpcio>=1.60", "protobuf>=5"]\n')
    assert requirements.dependencies([str(server), str(client)]) == ["grpcio>=1.60", "rich", "protobuf>=5"]


@pytest.fixture
def health_server():
    """A gRPC server with only the standard health service, on a free port."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer, health_pb2.HealthCheckResponse
    finally:
        server.stop(0)


def test_the_container_health_check_passes_only_while_the_server_says_serving(health_server, capsys):
    from .conftest import load_script

    check = load_script("healthcheck")
    addr, servicer, reply = health_server
    servicer.set("", reply.SERVING)
    servicer.set("svasim.accel.v1.AccelService", reply.NOT_SERVING)
    assert check.main([addr]) == 0
    assert check.main([addr, "svasim.accel.v1.AccelService"]) == 1
    assert check.main([addr, "no.such.Service"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    servicer.set("", reply.NOT_SERVING)
    assert check.main([addr]) == 1
    assert "NOT_SERVING" in capsys.readouterr().out
    assert check.main([]) == 2


def test_nothing_listening_fails_the_health_check(capsys):
    import socket

    from .conftest import load_script

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The port was free a moment ago and nothing was started on it.
    assert load_script("healthcheck").main([f"127.0.0.1:{port}"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err
