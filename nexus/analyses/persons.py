"""Who did an event: the person a distinct id resolves to, as SQL joined onto `events AS e`.

Person = `identities.person_id` when the distinct id has a live link (identities read with FINAL, so
the highest version wins and deleted links are gone), else the distinct id itself. Both are Strings, so
one column holds either. Joins are ANY: FINAL leaves one row per distinct id, and ANY lets the hash
join stop at the first match.
"""

from __future__ import annotations

from nexus.analyses.query import PROJECT

IDENTITIES_JOIN = (
    "LEFT ANY JOIN (SELECT distinct_id, toString(person_id) AS person_id FROM identities FINAL "
    f"WHERE project_id = {PROJECT}) AS ids ON ids.distinct_id = e.distinct_id"
)

PERSON = "if(ids.person_id = '', e.distinct_id, ids.person_id)"

# Person traits for person-property filters and breakdowns. A person without a row reads as having no
# properties, so negative filters (`neq`, `is_not_set`) hold for them, as they do for missing event ones.
PERSON_PROPERTIES_JOIN = (
    "LEFT ANY JOIN (SELECT toString(person_id) AS person_key, properties AS person_properties FROM persons "
    f"FINAL WHERE project_id = {PROJECT}) AS pp ON pp.person_key = {PERSON}"
)


def joins(person: bool, person_properties: bool) -> str:
    """The joins a query over `events AS e` needs: identities for the person, persons for their traits."""
    parts = []
    if person or person_properties:
        parts.append(IDENTITIES_JOIN)
    if person_properties:
        parts.append(PERSON_PROPERTIES_JOIN)
    return "\n".join(parts)
