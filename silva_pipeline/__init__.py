"""silva_pipeline: the Dagster project from a person's ratings to a released silva head."""
