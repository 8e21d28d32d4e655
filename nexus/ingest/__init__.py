"""The write path: wire types, pipeline steps, enrichment, identity and the group-commit writer."""
