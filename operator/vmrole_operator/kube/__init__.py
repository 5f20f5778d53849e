"""Talking to the API server: the calls, the errors an idempotent step may meet, and Events."""
