"""Deciding which samples to flag: cutoffs and the detector table."""
