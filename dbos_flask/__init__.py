"""The flask adapter of the durable-workflow suite (see README)."""
