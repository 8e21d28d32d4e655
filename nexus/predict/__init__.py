"""Predictions: per-person features in ClickHouse SQL, scikit-learn models for churn and lifetime value, an engagement score, model versions and scoring."""
