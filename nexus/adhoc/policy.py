"""What an ad-hoc query may touch: the tables (each filtered to the caller's project by the engine), the
table functions and the functions. Tables and table functions are allow-listed; functions, of which
ClickHouse has some 1,500, are refused by category and by name where they reach outside the query's own
tables: files, dictionaries, the host, server configuration, other tables by name, or sleeping."""

from __future__ import annotations

# Nexus tables a project's engineers may query, each with the column the engine filters by. New tables
# are invisible to ad-hoc SQL until they are added here. Not here, on purpose: api_keys (hashes of every
# project's keys), query_limits, schema_migrations, and the materialized views (reading one reads its
# target table under another name, which the per-table row filter would not cover).
PROJECT_TABLES: dict[str, str] = {
    "events": "project_id",
    "persons": "project_id",
    "identities": "project_id",
    "events_hourly": "project_id",
    "events_daily": "project_id",
    "sessions": "project_id",
    "projects": "project_id",
    "saved_queries": "project_id",
    "dashboards": "project_id",
    "person_predictions": "project_id",  # partitioned by project (migration 017), as events since 008
}

# Engine shortcuts that answer from part metadata instead of rows, switched off for ad-hoc SQL. Rows are
# filtered by project and parts never mix projects (migration 008), but these read a part's metadata as
# a whole or rewrite the query around the row filter: distinctJSONPaths read the paths of every part and
# a count() beside it counted parts, not rows. With them off, every answer comes from filtered rows.
NO_METADATA_SHORTCUTS: tuple[tuple[str, int], ...] = (
    ("optimize_trivial_count_query", 0),  # count() from part row counts
    ("optimize_use_implicit_projections", 0),  # count/min/max of the partition key from part metadata
    ("optimize_use_projections", 0),  # projections hold their own copy of rows
    ("optimize_functions_to_subcolumns", 0),  # distinctJSONPaths from the JSON column's path list
    ("use_query_cache", 0),  # a cached result answers without the session's row filter being applied
)

# Tables outside the Nexus database that hold nobody's data.
SYSTEM_TABLES: frozenset[str] = frozenset({"one", "numbers", "numbers_mt", "zeros", "zeros_mt"})

# Table functions that generate rows from their arguments and read nothing. Not zeros() and zeros_mt():
# the engine refuses them under readonly=1, and a refusal error lists this set as what is allowed.
TABLE_FUNCTIONS: frozenset[str] = frozenset({"numbers", "numbers_mt", "generate_series", "generateSeries", "values"})

# Function categories (system.functions.categories) refused whole.
DENIED_CATEGORIES: frozenset[str] = frozenset(
    {
        "Dictionary",  # dictGet*: reads dictionaries, which may be backed by any table or source
        "Embedded Dictionary",  # regionToName and friends: server-side geobase files
        "Introspection",  # addressToSymbol, demangle, logTrace: the server's binary and logs
        "AI",  # aiGenerate and friends: call external model endpoints
        "Internal",  # the analyzer's own helpers (__getScalar reads other queries' scalars)
    }
)

# Functions the parser produces from ordinary syntax that are listed in a refused category.
ALLOWED_DESPITE_CATEGORY: frozenset[str] = frozenset({"caseWithExpression"})  # CASE x WHEN ...

# Functions refused by name, from otherwise harmless categories.
DENIED_FUNCTIONS: frozenset[str] = frozenset(
    {
        "file",  # reads any file the server process can read, even under readonly=1
        "filesystemAvailable", "filesystemCapacity", "filesystemUnreserved",
        "joinGet", "joinGetOrNull", "hasColumnInTable",  # reach tables by name, past the row filter
        "getServerSetting", "getMergeTreeSetting", "getMacro", "globalVariable",
        "getClientHTTPHeader", "showCertificate", "currentRequestURL",
        "hostName", "FQDN", "displayName", "serverUUID", "getOSKernelVersion", "buildId", "uptime",
        "tcpPort", "getServerPort", "zookeeperSessionUptime",
        "generateSerialID",  # writes a counter to Keeper
        "sleep", "sleepEachRow",  # hold a thread for nothing; time limits stop them, refusing is clearer
        "naiveBayesClassifier", "naiveBayesClassifierWithProb", "naiveBayesClassifierWithAllProbs",
        "catboostEvaluate",  # load model files configured on the server
    }
)

# Names the parser emits for syntax (`x -> y`, EXISTS, count(DISTINCT x), GROUPING SETS' grouping())
# that system.functions does not list.
SYNTAX_FUNCTIONS: frozenset[str] = frozenset({"lambda", "exists", "countDistinct", "grouping"})

# `x IN t` reads table t when its right side is a bare name.
SET_FUNCTIONS: frozenset[str] = frozenset(
    {"in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn", "globalNullIn", "globalNotNullIn"}
)
