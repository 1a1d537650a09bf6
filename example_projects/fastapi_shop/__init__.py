"""The FastAPI shop example (see README.md)."""
