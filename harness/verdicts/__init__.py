"""Verdicts: the statistics core, claims and their looks, the regression gate, and their error
rates by simulation. No torch, no Ray."""
