"""``python -m example_projects.fastapi_tickets [--port 8000]``: serve with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from .tickets import configure_from_env


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the durable ticket office")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(configure_from_env(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
