"""The only door to ClickHouse: a client from a URL, the schema migrations, the SQL files."""
