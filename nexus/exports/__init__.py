"""File writers (CSV, NDJSON/JSON, Parquet, Arrow) that take results, not connections."""
