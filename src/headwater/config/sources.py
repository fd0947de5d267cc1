"""``sources:``: where rows come from (files, local or SFTP, and SQL databases). The
source classes in ``headwater.sources`` are built from these models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from headwater.config.base import Strict as _Strict


class FileSourceBase(_Strict):
    """A file, a glob, or ``sftp://user@host:port/dir/*.csv``.

    SFTP credentials come from the environment through ``${VAR}``; ``known_hosts`` is a
    file in OpenSSH format (default: the user's ``~/.ssh/known_hosts``).
    """

    path: str = Field(
        description="A file, a glob (data/orders/*.parquet) relative to the project, or sftp://user@host:port/dir/*.csv."
    )
    password: SecretStr | None = Field(
        default=None, description="SFTP password, e.g. ${SFTP_PASSWORD}."
    )
    private_key: str | None = Field(
        default=None, description="SFTP private key file, e.g. keys/id_ed25519."
    )
    private_key_passphrase: SecretStr | None = Field(
        default=None, description="The private key's passphrase, if it has one."
    )
    known_hosts: str | None = Field(
        default=None,
        description="OpenSSH known_hosts file the SFTP server's host key is verified against (default ~/.ssh/known_hosts).",
    )

    @property
    def is_remote(self) -> bool:
        return self.path.startswith("sftp://")


class CsvSourceConfig(FileSourceBase):
    type: Literal["csv"] = Field(description="CSV files.")
    delimiter: str = Field(
        default=",", min_length=1, max_length=1, description="The field delimiter, one character."
    )
    header: bool = Field(default=True, description="Whether the first line names the columns.")


class JsonSourceConfig(FileSourceBase):
    """``json`` reads an array of objects or newline-delimited objects; ``ndjson`` only lines."""

    type: Literal["json", "ndjson"] = Field(
        description="json: an array of objects or one object per line; ndjson: one object per line."
    )


class ParquetSourceConfig(FileSourceBase):
    type: Literal["parquet"] = Field(description="Parquet files.")


class SqlSourceConfig(_Strict):
    """A database reached through SQLAlchemy. Models over it run inside it.

    ``table`` or ``query`` make the source one relation, so a model may name the source
    itself (``select * from app_db``); without them, a model sets ``source: app_db`` and
    names the database's own tables.
    """

    type: Literal["sql"] = Field(description="A database reached through SQLAlchemy.")
    url: SecretStr = Field(
        description="SQLAlchemy URL (postgresql://..., sqlite:///...); a secret, e.g. ${APP_DATABASE_URL}."
    )
    table: str | None = Field(default=None, description="Make the source this one table.")
    query: str | None = Field(
        default=None, description="Make the source the result of this SELECT."
    )

    @model_validator(mode="after")
    def _one_relation(self) -> SqlSourceConfig:
        if self.table and self.query:
            raise ValueError("set either table or query, not both")
        return self


SourceConfig = Annotated[
    CsvSourceConfig | JsonSourceConfig | ParquetSourceConfig | SqlSourceConfig,
    Field(discriminator="type"),
]
FILE_SOURCE_TYPES = ("csv", "json", "ndjson", "parquet")
