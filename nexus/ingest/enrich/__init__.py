"""Ingest-time enrichment: pure functions that turn an event's raw IP, user agent, URL and referrer
into the typed columns stored with it (geo, device, campaign, referrer class, anonymised IP).

Each module caches its results per process, since IPs, user agents and referrer domains repeat far
more often than they change; none touches ClickHouse.
"""
