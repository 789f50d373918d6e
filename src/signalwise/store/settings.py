"""Settings of the store and the API, in one place.

Read from the environment (prefix `SIGNALWISE_`) or passed explicitly, e.g.
`Settings(database_url="postgresql+psycopg://postgres@127.0.0.1/test")`.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///signalwise.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNALWISE_", extra="ignore")

    #: SQLAlchemy URL; SQLite file in the working directory by default
    database_url: str = DEFAULT_DATABASE_URL
    #: most records one POST /api/v1/ingest/batch may carry (413 above)
    max_batch_records: int = Field(default=10_000, ge=1)
    #: most items one analytics page may hold
    max_page_size: int = Field(default=1_000, ge=1)
    #: seconds an analytics answer is served from the in-process cache
    cache_ttl_s: float = Field(default=30.0, ge=0)
    #: controller whose run of the same scenario and seed is "the baseline"
    baseline_controller: str = "fixed"
