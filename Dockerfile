# The Nexus image that compose.yaml builds: one image for the api, worker and dashboard services.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY nexus ./nexus
COPY sql ./sql
RUN pip install --no-cache-dir . && useradd --create-home --uid 1000 nexus && mkdir /data /exports && chown nexus /data /exports
USER nexus
ENV NEXUS_DATA_DIR=/data NEXUS_HOST=0.0.0.0 NEXUS_PORT=8000
EXPOSE 8000 8001
CMD ["nexus", "serve"]
