# One image for every svasim service; docker-compose.yml picks the service with
# SVASIM_SERVICES. The base image is a build argument, so a locally built base works
# where no registry is reachable (docker build --build-arg BASE_IMAGE=my/python:3.11).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/svasim
COPY pyproject.toml setup.py README.md ./
COPY src src
COPY clients clients
COPY migrations migrations
RUN python -m pip install .

# Host the whole fabric by default; compose runs one service per container.
ENTRYPOINT ["svasim"]
CMD ["serve"]
