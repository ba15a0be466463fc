"""A short demonstration of the queue, for `make run` until the services exist."""

from __future__ import annotations

from pqcore import open_queue


def main() -> None:
    queue = open_queue()
    for n in range(5):
        queue.enqueue(f"demo job {n}")
    while jobs := queue.claim("demo-consumer", limit=2):
        for job in jobs:
            queue.complete(job.id, job.lease_token or "")
            print(f"completed job {job.id}: {job.data}")
    print(queue.stats().counts)


if __name__ == "__main__":
    main()
