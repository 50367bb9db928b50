"""Measuring detection against known truth: metrics, and seeded noise injection."""
