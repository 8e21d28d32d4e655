"""The read service every client calls (the API, the dashboard, jobs, the CLI): analyses with their cache,
explain and table forms (analyses.py), and ad-hoc SQL in its sandbox (nexus.adhoc.sandbox). None of the
clients holds SQL, cache logic or result reshaping of its own."""
