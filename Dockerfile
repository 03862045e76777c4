# ticketbridge: one image for `serve` (receiver + worker), `serve --no-worker` and `worker`.
# Build: docker build -t ticketbridge .
# Run:   docker run -p 8080:8080 -v bridge-data:/data ticketbridge
#        (your own rules and templates: -v $PWD/rules:/app/rules -v $PWD/templates:/app/templates)
#
# The image installs the wheel its build stage builds, with the same commands as the wheel
# stage of .ci/run, whose end-to-end tests run against that installed wheel
# (tests/test_deploy.py holds the two to each other).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim
COPY --from=build /dist /dist
RUN pip install --no-cache-dir /dist/ticketbridge-*.whl \
    && rm -rf /dist \
    && useradd --create-home --uid 10001 bridge \
    && mkdir -p /data /app \
    && chown bridge:bridge /data \
    && ticketbridge init /app
WORKDIR /app
USER bridge
ENV BRIDGE_RULES=/app/rules \
    BRIDGE_TEMPLATES=/app/templates \
    BRIDGE_DATABASE_URL=sqlite:////data/bridge.db \
    BRIDGE_HOST=0.0.0.0 \
    PORT=8080 \
    PYTHONUNBUFFERED=1
EXPOSE 8080
VOLUME ["/data"]
# /readyz: the store answers and the configuration is loaded. A `worker`-only container
# serves no HTTP: run it with --no-healthcheck (Fly checks only the web process).
HEALTHCHECK --interval=15s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8080'), timeout=2)"]
# SIGTERM: stop receiving, let deliveries in flight finish (defaults.shutdown_grace), exit.
STOPSIGNAL SIGTERM
CMD ["ticketbridge", "serve"]
