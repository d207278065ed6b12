#!/usr/bin/env bash
# The MLflow tracking server silva logs to on a cluster: runs and the model registry in the same
# PostgreSQL as Dagster (database `mlflow`), artifacts served through the server itself, so run
# pods need only MLFLOW_TRACKING_URI=http://<host>:5000 and no storage credentials.
set -euo pipefail
: "${MLFLOW_PG_URI:?set MLFLOW_PG_URI=postgresql://user:password@host:5432/mlflow}"
: "${MLFLOW_ARTIFACTS:=/data/mlartifacts}"
exec mlflow server \
  --backend-store-uri "$MLFLOW_PG_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS" \
  --host 0.0.0.0 --port 5000 --workers 4
