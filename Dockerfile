# One image for every svasim service; each container of docker-compose.yml picks the services
# it hosts with `serve --services ...`. The base image is a build argument: python:3.11-slim
# where a registry is reachable, or the Debian python3 image that scripts/docker/stack.py
# builds where none is (any image with python3 and its venv module will do).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# The building host's pip settings (package index, CA bundle), written there by stack.py (pip
# ignores a missing file); only this stage reads them, so the image does not keep them.
COPY scripts/docker/host/ /tmp/host/
ENV PIP_CONFIG_FILE=/tmp/host/pip.conf PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY scripts/docker/requirements.py /tmp/requirements.py
COPY pyproject.toml /src/pyproject.toml
COPY clients/python/pyproject.toml /src/clients/python/pyproject.toml
# A venv: Debian's pip refuses installs into the system Python (PEP 668).
RUN python3 -m venv /opt/svasim
# The dependencies first, in a layer that a change of the sources does not rebuild.
RUN python3 /tmp/requirements.py /src/pyproject.toml /src/clients/python/pyproject.toml > /tmp/requirements.txt \
 && /opt/svasim/bin/pip install -q -r /tmp/requirements.txt
COPY README.md setup.py /src/
COPY clients/python /src/clients/python
COPY src /src/src
COPY migrations /src/migrations
RUN /opt/svasim/bin/pip install -q --no-deps /src/clients/python /src \
 && /opt/svasim/bin/pip check

FROM ${BASE_IMAGE}
COPY --from=build /opt/svasim /opt/svasim
COPY scripts/docker/healthcheck.py /opt/svasim/healthcheck.py
RUN useradd --system --home-dir /var/lib/svasim --create-home svasim
USER svasim
WORKDIR /var/lib/svasim
# In an image, listen on every interface so that `docker run -p 50051:50051` reaches the
# server; docker-compose.yml, on host networking, binds 127.0.0.1 instead.
ENV PATH=/opt/svasim/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SVASIM_HOST=0.0.0.0
EXPOSE 50051
HEALTHCHECK --interval=5s --timeout=5s --start-period=5s --retries=20 \
  CMD python /opt/svasim/healthcheck.py "127.0.0.1:${SVASIM_PORT:-50051}"
# The whole fabric (SQLite store in /var/lib/svasim) by default; compose runs one service
# per container against PostgreSQL.
ENTRYPOINT ["svasim"]
CMD ["serve"]
