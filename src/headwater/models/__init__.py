"""Models: named SELECTs over sources, typed and checked in SQL where the data lives."""

from headwater.models.model import (
    MAX_REJECTION_DETAILS,
    ModelResult,
    RowRejection,
    engine_for_model,
    materialize_model,
    model_database,
    model_table_name,
)

__all__ = [
    "MAX_REJECTION_DETAILS",
    "ModelResult",
    "RowRejection",
    "engine_for_model",
    "materialize_model",
    "model_database",
    "model_table_name",
]
