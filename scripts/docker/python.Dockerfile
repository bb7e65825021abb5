# Debian's python3, standing in for python:3.11-slim where no image registry can be reached.
# Built by scripts/docker/stack.py on the Debian base it debootstraps (svasim/debian:SUITE).
ARG DEBIAN_IMAGE=svasim/debian:bookworm
FROM ${DEBIAN_IMAGE}
# python3-venv: Debian's pip refuses installs into the system Python (PEP 668), so the
# svasim image installs into a venv.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
