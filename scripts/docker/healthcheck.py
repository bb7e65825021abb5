"""Container health check: exit 0 when the gRPC server at ADDR reports SERVING.

``svasim health`` answers the same, but loads the whole command line (the store, Alembic,
Rich) first: a check every few seconds in every container would cost more CPU than the
services themselves when idle. This loads gRPC's health stub only.

    python /opt/svasim/healthcheck.py 127.0.0.1:50051 [SERVICE]
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout: float = 3.0) -> str:
    """The serving status name of ``service`` ("" = the server) at ``address``."""
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def main(argv: list[str]) -> int:
    """Print the status; 0 if SERVING, 1 otherwise or when the server does not answer."""
    if not 1 <= len(argv) <= 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try:
        status = check(*argv)
    except grpc.RpcError as e:
        print(f"{argv[0]}: {e.code().name}: {e.details() or 'no such service'}", file=sys.stderr)
        return 1
    print(f"{argv[0]} {argv[1] if len(argv) > 1 else '(server)'}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
