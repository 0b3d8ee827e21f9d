# syntax=docker/dockerfile:1
# One image for both services; docker-compose.yml picks the module to run.
#
# Build stage: generates the code with the Makefile's own recipe (`make generate`) and builds
# wheels of the package and every runtime dependency. The generator's tools (grpcio-tools,
# mypy-protobuf, from the dev extra) stay here.
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The same requirements as the dev extra in pyproject.toml (a test holds them equal).
RUN pip install --no-cache-dir 'grpcio-tools>=1.70,<2' 'mypy-protobuf>=3.6'
COPY Makefile pyproject.toml ./
COPY protos ./protos
RUN make generate PYTHON=python
COPY flowpair_shared ./flowpair_shared
COPY orchestrator_svc ./orchestrator_svc
COPY discovery_svc ./discovery_svc
# Generated code refuses a grpcio or protobuf older than its generator: the runtime gets the
# very versions the generator ran with.
RUN pip freeze > /tmp/generator.txt \
 && pip wheel --no-cache-dir --wheel-dir /wheels --constraint /tmp/generator.txt '.[otlp]'

# Runtime stage: the package and its runtime dependencies only, with the OTLP trace exporter
# (OTEL_EXPORTER_OTLP_ENDPOINT turns it on), from the build stage's wheels (mounted, so they
# add no layer).
FROM python:3.11-slim
WORKDIR /app
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels 'flowpair[otlp]'
# What `alembic upgrade head` (the compose migrate service) reads from the working folder.
COPY alembic.ini ./
COPY migrations ./migrations
USER nobody
