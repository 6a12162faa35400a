"""Metrics, tracing and logging set-up."""
