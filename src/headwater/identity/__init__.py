"""Identity resolution: records from several sources that share no single key, resolved
into persons with stable ids and golden records, inside the engine holding the data (the
DuckDB warehouse or the sources' PostgreSQL database; see resolve.py and place.py)."""

from headwater.identity.resolve import (
    OUTPUTS,
    IdentityReport,
    materialize_any,
    output_table,
    resolve,
    run_job,
)

__all__ = ["OUTPUTS", "IdentityReport", "materialize_any", "output_table", "resolve", "run_job"]
