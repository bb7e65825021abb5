"""A bare gRPC echo server: the baseline an ENQCMD round trip is compared with.

Same grpcio, same thread pool size, same loopback: the only difference from a svasim
server is the work behind the call. Bytes in, the same bytes out.
"""

from __future__ import annotations

import argparse
import signal
import threading
from concurrent import futures

import grpc


def _identity(b: bytes) -> bytes:
    return b


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {"Echo": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req, _identity, _identity)},
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.stop(1).wait()


if __name__ == "__main__":
    main()
