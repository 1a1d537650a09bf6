"""The fastapi adapter of the durable-workflow suite (see README)."""
