"""Fixing labels under a budget: relabel priorities, campaigns, simulations on real votes."""
