"""`nexus person erase` as an operator uses it: it asks first (no answer, no erasure), then erases a person by
an unlinked distinct id (imported events) or by a demo user's id (their whole person), and says how much went."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import run_nexus


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli-erasure")
    assert run_nexus("project", "create", "shop", data_dir=directory).returncode == 0
    assert run_nexus("demo", "--events", "1500", "--project", "shop", "--seed", "7", data_dir=directory).returncode == 0
    now = datetime.now(UTC)
    visits = [{"type": "track", "event": "viewed", "anonymousId": "cli-visitor", "messageId": f"cli-{i}",
               "timestamp": (now - timedelta(hours=i)).isoformat()} for i in range(3)]
    file = directory / "visits.ndjson"
    file.write_text("".join(json.dumps(v) + "\n" for v in visits))
    assert run_nexus("import", str(file), "--project", "shop", data_dir=directory).returncode == 0
    return directory


def row(data_dir: Path, sql: str) -> dict:
    """The one row a query answers, through `nexus sql` (as NDJSON)."""
    result = run_nexus("sql", sql, "--format", "ndjson", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    [answer] = [json.loads(line) for line in result.stdout.splitlines()]
    return answer


def test_it_asks_first_and_erases_only_on_yes(data_dir: Path):
    declined = run_nexus("person", "erase", "cli-visitor", "--project", "shop", data_dir=data_dir, input_text="n\n")
    assert declined.returncode == 1 and "Erase person 'cli-visitor'" in declined.stderr

    # Then the erasure finds all three events the declined one left
    erased = run_nexus("person", "erase", "cli-visitor", "--project", "shop", data_dir=data_dir, input_text="y\n")
    assert erased.returncode == 0, erased.stderr
    assert erased.stdout.startswith("erased: 0 from sessions, 3 from events, 0 from cohort_members, "
                                    "0 from person_predictions, 0 from identities, 0 from persons;")

    again = run_nexus("person", "erase", "cli-visitor", "--project", "shop", "--yes", data_dir=data_dir)
    assert again.returncode == 1 and again.stderr.strip() == "error: no person 'cli-visitor' in this project"


def test_a_user_id_erases_their_whole_person_and_the_rollups_follow(data_dir: Path):
    found = row(data_dir, "SELECT any(u) AS user, toString(person_id) AS person, count() AS ids FROM "
                          "(SELECT person_id, if(distinct_id LIKE 'user-%', distinct_id, NULL) AS u FROM identities FINAL) "
                          "GROUP BY person_id HAVING user IS NOT NULL ORDER BY user LIMIT 1")
    assert found["ids"] >= 2  # the user id and the anonymous id it was identified with

    erased = run_nexus("person", "erase", found["user"], "--project", "shop", "--yes", data_dir=data_dir)

    assert erased.returncode == 0, erased.stderr
    assert row(data_dir, f"""
        SELECT (SELECT count() FROM identities WHERE toString(person_id) = '{found["person"]}') AS links,
               (SELECT count() FROM persons WHERE toString(person_id) = '{found["person"]}') AS traits,
               (SELECT count() FROM events) = (SELECT sum(events) FROM events_daily) AS daily_equals_raw,
               (SELECT uniq(distinct_id) FROM events) = (SELECT uniqMerge(distinct_ids) FROM events_hourly)
                 AS hourly_ids_equal_raw""") == {"links": 0, "traits": 0, "daily_equals_raw": 1,
                                                 "hourly_ids_equal_raw": 1}
