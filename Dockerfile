# The worker image used by docker-compose.yml (`streams worker`). Not built on the CI machine,
# which has no Docker engine. Installed editable so that the package finds ../schemas.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY schemas ./schemas
COPY connectors ./connectors
RUN pip install --no-cache-dir -e .
ENV STREAMS_WEB_BIND=0.0.0.0 STREAMS_DATA_DIR=/var/lib/streams
EXPOSE 6066
CMD ["streams", "worker"]
