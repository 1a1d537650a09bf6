"""Latency of messages, events and workflow completion (p50 / p99).

Three measurements, each over ``--iterations`` rounds:

- send -> recv: from the moment ``DBOS.send`` is called until ``DBOS.recv``
  returns that message inside the receiving workflow;
- set_event -> get_event: from the moment the workflow calls ``DBOS.set_event``
  until a ``DBOS.get_event`` already waiting for it returns;
- completion -> get_result: from the moment a workflow function returns until a
  ``handle.get_result()`` already waiting for it returns (this includes the
  write of the outcome).

The peer (the workflows) runs in this process by default, or in a second
process with ``--cross-process`` (the same machine, so ``time.time()`` is
comparable). Usage:

    python bench/bench_messaging.py [--url URL] [--iterations N] [--cross-process]

Without ``--url`` a fresh SQLite file is used; pass a PostgreSQL URL of an
empty or throwaway database for PostgreSQL (it is reset).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from typing import Any

from dbos_core import DBOS, SetWorkflowID
from dbos_core.error import DBOSNonExistentWorkflowError

ECHO_ID = "bench-echo"
PAUSE = 0.01


def finisher_id(i: int) -> str:
    return f"bench-finisher-{i}"


@DBOS.workflow(name="bench_echo")
def echo(rounds: int) -> None:
    for i in range(rounds):
        DBOS.recv("ping", timeout_seconds=60)
        received = time.time()
        DBOS.set_event(f"ack{i}", (received, time.time()))


@DBOS.workflow(name="bench_finisher")
def finisher() -> float:
    DBOS.recv("go", timeout_seconds=60)
    return time.time()


def configure(url: str, version: str, executor: str) -> None:
    DBOS(
        config={
            "name": "bench-messaging",
            "system_database_url": url,
            "application_version": version,
            "executor_id": executor,
        }
    )


def start_echo(rounds: int) -> None:
    with SetWorkflowID(ECHO_ID):
        DBOS.start_workflow(echo, rounds)


def start_finisher(i: int) -> None:
    with SetWorkflowID(finisher_id(i)):
        DBOS.start_workflow(finisher)


def run_peer(url: str, rounds: int) -> None:
    """The second process: run the workflows until they are done."""
    configure(url, "bench-peer", "peer")
    DBOS.launch()
    start_echo(rounds)
    print("ready", flush=True)
    DBOS.retrieve_workflow(ECHO_ID).get_result()
    # One finisher at a time, so that no other waiting workflow adds load.
    for i in range(rounds):
        start_finisher(i)
        DBOS.retrieve_workflow(finisher_id(i)).get_result()
    DBOS.destroy()


def measure(rounds: int, peer_process: bool) -> dict[str, list[float]]:
    send_recv: list[float] = []
    event: list[float] = []
    for i in range(rounds):
        # Measure a message to a receiver that is already waiting, not one still
        # busy finishing the previous round.
        time.sleep(PAUSE)
        sent = time.time()
        DBOS.send(ECHO_ID, i, "ping")
        received, set_at = DBOS.get_event(ECHO_ID, f"ack{i}", timeout_seconds=30)
        got_event = time.time()
        send_recv.append(received - sent)
        event.append(got_event - set_at)
    completion: list[float] = []
    for i in range(rounds):
        if not peer_process:
            start_finisher(i)
        handle = _when_created(finisher_id(i))
        # The finisher returns once told to; get_result is already waiting then.
        threading.Timer(PAUSE, DBOS.send, args=(finisher_id(i), "go", "go")).start()
        finished_at = handle.get_result()
        completion.append(time.time() - finished_at)
    return {
        "send -> recv": send_recv,
        "set_event -> get_event": event,
        "completion -> get_result": completion,
    }


def _when_created(workflow_id: str) -> Any:
    while True:
        try:
            return DBOS.retrieve_workflow(workflow_id)
        except DBOSNonExistentWorkflowError:
            time.sleep(0.001)


def report(label: str, results: dict[str, list[float]]) -> None:
    print(f"\n{label}")
    print(f"{'measurement':<26} {'n':>5} {'p50 ms':>8} {'p99 ms':>8}")
    for name, samples in results.items():
        ms = sorted(s * 1000 for s in samples)
        p50 = statistics.median(ms)
        p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
        print(f"{name:<26} {len(ms):>5} {p50:>8.2f} {p99:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=None)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--cross-process", action="store_true")
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite"
    if args.peer:
        run_peer(url, args.iterations)
        return
    configure(url, "bench-main", "main")
    DBOS.reset_system_database()
    DBOS.launch()
    peer = None
    if args.cross_process:
        peer = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--peer",
                "--url",
                url,
                "--iterations",
                str(args.iterations),
            ],
            stdout=subprocess.PIPE,
            env={**os.environ},
        )
        assert peer.stdout is not None
        assert peer.stdout.readline().strip() == b"ready"
    else:
        start_echo(args.iterations)
    try:
        results = measure(args.iterations, peer is not None)
    finally:
        if peer is not None:
            peer.wait(timeout=60)
        DBOS.destroy()
    where = "cross-process" if args.cross_process else "same process"
    backend = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    report(f"{backend}, {where}, {args.iterations} rounds", results)


if __name__ == "__main__":
    main()
