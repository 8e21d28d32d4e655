"""Schema discovery lists exactly the tables ad-hoc SQL can read, each table and column explained."""

from __future__ import annotations

from nexus.adhoc import policy, schema


def test_schema_lists_the_queryable_tables_with_their_comments(client) -> None:
    database = client.query("SELECT currentDatabase()").result_rows[0][0]
    answer = schema.describe(client, database)
    assert [t.name for t in answer.tables] == sorted(policy.PROJECT_TABLES)
    events = next(t for t in answer.tables if t.name == "events")
    assert events.engine == "MergeTree" and events.comment.startswith("Every stored event")
    assert ("ts", "DateTime64(3, 'UTC')") in [(c.name, c.type) for c in events.columns]
    assert "numbers" in answer.table_functions and "system.one" in answer.system_tables
    # Every table and every column says what it holds
    for table in answer.tables:
        assert table.comment, table.name
        assert [c.name for c in table.columns if not c.comment] == [], table.name
