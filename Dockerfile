# One image for both services; docker-compose.yml picks the module to run.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY protos ./protos
COPY flowpair_shared ./flowpair_shared
COPY orchestrator_svc ./orchestrator_svc
COPY discovery_svc ./discovery_svc
COPY migrations ./migrations
COPY alembic.ini Makefile ./
RUN pip install --no-cache-dir -e '.[dev]' \
 && python -m grpc_tools.protoc -Iprotos --python_out=. --grpc_python_out=. \
      protos/flowpair/v1/*.proto protos/flowpair/internal/v1/*.proto \
 && touch flowpair/__init__.py flowpair/v1/__init__.py flowpair/internal/__init__.py \
      flowpair/internal/v1/__init__.py
ENV PYTHONPATH=/app
USER nobody
