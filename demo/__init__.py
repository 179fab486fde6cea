"""Demo data for Model Factory."""
