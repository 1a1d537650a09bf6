"""The django adapter of the durable-workflow suite (see README)."""
