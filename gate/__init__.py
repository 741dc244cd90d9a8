"""Model gate: a CI quality gate for models tracked in MLflow."""

__version__ = "0.1.0"
