# The Orbit gateway as a container image.
#
#   docker build -t orbit-gateway .
#   docker run --rm -p 8080:8080 -p 5060:5060/udp -p 5060:5060/tcp -p 20000-20099:20000-20099/udp \
#     -v $PWD/my-gateway.yaml:/etc/orbit/gateway.yaml:ro orbit-gateway
#
# Ports: 8080/tcp HTTP API (and GET /metrics), 5060/udp+tcp SIP, 20000-20099/udp RTP
# (rtp.port_min..rtp.port_max of the configuration must match the published range).
# Configuration: /etc/orbit/gateway.yaml (the example file is baked in; mount your own)
# plus GATEWAY__... environment variables. Data (SQLite, recordings before upload) goes
# to /var/lib/orbit, a volume. The process runs as the unprivileged user "orbit" and
# drains on SIGTERM (give it http.drain_timeout_seconds + 5 s to stop).

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libsndfile: WAV recording (soundfile).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 orbit \
    && useradd --system --uid 10001 --gid orbit --home-dir /var/lib/orbit --shell /usr/sbin/nologin orbit \
    && mkdir -p /var/lib/orbit/data/recordings /etc/orbit \
    && chown -R orbit:orbit /var/lib/orbit

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY media ./media
RUN pip install . && rm -rf build *.egg-info

# The example agents (the demo's "agent" service runs examples/echo_agent.py from here).
COPY examples ./examples
COPY config/gateway.example.yaml /etc/orbit/gateway.yaml

USER orbit
WORKDIR /var/lib/orbit
VOLUME ["/var/lib/orbit"]

# Inside a container the API listens on every interface; the published port decides who reaches it.
ENV GATEWAY__HTTP__HOST=0.0.0.0

EXPOSE 8080/tcp 5060/udp 5060/tcp 20000-20099/udp

STOPSIGNAL SIGTERM
CMD ["orbit-gateway", "serve", "--config", "/etc/orbit/gateway.yaml"]
