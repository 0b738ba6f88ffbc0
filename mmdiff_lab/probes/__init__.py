"""Probes: what happens inside a model while it runs (lab 04): cross-attention recording and editing."""
