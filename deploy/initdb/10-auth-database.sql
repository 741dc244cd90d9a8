-- Runs once, when the postgres volume is first initialised. The auth app keeps its own
-- alembic history, so it needs a database of its own next to the tracking one.
CREATE DATABASE mlflow_auth OWNER mlflow;
