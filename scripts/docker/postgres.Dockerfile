# Debian's PostgreSQL, standing in for postgres:16 where no image registry can be reached.
# Built by scripts/docker/stack.py on the Debian base it debootstraps (svasim/debian:SUITE).
ARG DEBIAN_IMAGE=svasim/debian:bookworm
FROM ${DEBIAN_IMAGE}
# The package creates a cluster of its own in /var/lib/postgresql/<major>/main; the
# entrypoint initialises PGDATA instead, the way the official image does.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
 && rm -rf /var/lib/apt/lists/* \
 && pg_dropcluster --stop "$(ls /usr/lib/postgresql)" main \
 && ln -s /usr/lib/postgresql/*/bin /usr/lib/postgresql/bin \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
