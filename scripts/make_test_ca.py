"""Make a throw-away CA and the certificates a TLS fabric needs, for tests and trials.

    python scripts/make_test_ca.py DIR [--name HOST ...] [--days N]

writes DIR/ca.pem, DIR/peer.pem + DIR/peer-key.pem (give them to every service as
--peer-tls-cert/--peer-tls-key, with --peer-tls-ca DIR/ca.pem), DIR/server.pem +
DIR/server-key.pem (--tls-cert/--tls-key of the client listener; clients check it
against DIR/ca.pem). Each certificate is valid for the names given (default: localhost,
127.0.0.1, cpu, iommu, accel). Needs the ``cryptography`` package. Not for production.
"""

from __future__ import annotations

import argparse

from svasim.wiring.tls import DEFAULT_NAMES, make_test_ca


def main() -> None:
    """Parse the arguments and write the files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--name", action="append", help="DNS name or IP address (repeatable)")
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    files = make_test_ca(args.directory, args.name or DEFAULT_NAMES, days=args.days)
    for name, path in files.items():
        print(f"{name:11} {path}")


if __name__ == "__main__":
    main()
