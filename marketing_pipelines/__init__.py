"""marketing_pipelines: a Dagster + dbt marketing-operations data platform."""
