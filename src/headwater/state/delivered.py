"""What delivery last sent each user, per destination and attribute: the memory attribute
de-duplication (``headwater.delivery.dedupe``) compares new values with. Declared here, with
the other tables, so the state store creates it whoever opens it."""

from __future__ import annotations

from sqlalchemy import Column, LargeBinary, String, Table

from headwater.state.db import metadata

delivered_attributes = Table(
    "delivered_attributes",
    metadata,
    Column("destination", String(200), primary_key=True),
    Column("user_key", String(1100), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)
