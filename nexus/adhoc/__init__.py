"""Ad-hoc SQL for data engineers: read-only queries over Nexus's own tables, confined to one project.

The engine enforces the sandbox: every query runs in its own session with `readonly=1`, a per-project
row filter on every table (`additional_table_filters`) and limits on time, memory, rows read and result
size. Before it runs, the engine's own parser (`parseQueryToJSON`) tells us what the query touches, and
only Nexus's tables, a few harmless table functions and no function that reaches outside the query's
tables (files, dictionaries, the host) are allowed. Saved queries and schema discovery live here too.
"""
