"""What a running Nexus tells its operator: Prometheus metrics and structured logs."""
