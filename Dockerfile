# The finops service (and the CPU simulators of the reference stack, `finops simulate ...`).
#   docker build -t finops:local .
#   docker run -p 8080:8080 -v finops-data:/data finops:local
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FINOPS_DB=/data/finops.duckdb

WORKDIR /app
COPY . /app
# A plain install: the Alembic revisions ship inside the package (finops/store/migrations).
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin finops \
 && mkdir -p /data \
 && chown finops:finops /data

USER finops
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

CMD ["finops", "serve", "--host", "0.0.0.0", "--port", "8080"]
