"""Metadata records (projects, keys; later dashboards, cohorts, ...), all on one table pattern."""
