"""Background jobs on Dramatiq: their records, the worker, what each kind does, schedules and delivery."""
