"""The read path: one module per analysis (request ▶ SQL ▶ result) over a shared vocabulary of date ranges,
filters, breakdowns, persons and the metric catalogue; `registry.ANALYSES` maps each kind to its module."""
