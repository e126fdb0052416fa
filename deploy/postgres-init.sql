-- deploy/compose.gpu.yaml: Dagster's storage is the `dagster` database (POSTGRES_DB), MLflow's
-- runs and registry live beside it.
CREATE DATABASE mlflow;
