"""The stack's one shared database, whatever the host's PQ_DB says.

``make stack-local`` with a relative ``PQ_DB`` in its environment runs one shared
database: test_user_commands.py. Here: a relative SQLite path given to the containers
on purpose (``PQ_STACK_DB``) is refused at start, a non-zero exit and one clear line,
never a healthy-looking private queue.
"""

from __future__ import annotations

import pytest

from tests.containers.conftest import Stack

pytestmark = [pytest.mark.acceptance, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.mark.parametrize("service", ["consumer", "manager", "admin"])
def test_a_relative_container_database_is_refused_at_start(stack: Stack, service: str) -> None:
    stack.set(PQ_STACK_DB="var/queue.db")
    result = stack.command("run", "--rm", "--no-deps", "-T", service, check=False, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    lines += [line for line in result.stderr.splitlines() if "refused to start" in line]
    refusals = [line for line in lines if "refused to start" in line]
    assert len(refusals) == 1, lines
    assert "queue database 'var/queue.db' is a relative SQLite path" in refusals[0]
    assert "/home/pq/var/queue.db" in refusals[0]  # the private file it would have been
    assert "PQ_STACK_DB" in refusals[0]  # and what to set instead
