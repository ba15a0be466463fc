"""The job file format and path safety, in-process (no queue needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common import jobfiles
from services.consumer.handlers import UnsafePath, resolve, safe_job_path


def test_completion_lines_are_recognised_by_job_id_only_when_whole() -> None:
    line = jobfiles.completion_line(7, 2, "host-1-abcd")
    text = "created x\n" + line + "2026-01-01T00:00:00+00:00 job=8 attempt=1 consum"
    assert jobfiles.completion_job_ids(text) == {7}
    assert jobfiles.holds_completion(text, 7) and not jobfiles.holds_completion(text, 8)
    assert not jobfiles.holds_completion("note: job=7 attempt=1 consumer=c\n", 70)


def test_atomic_write_leaves_the_whole_file_and_no_temporary(tmp_path: Path) -> None:
    path = jobfiles.write_atomically(tmp_path, "job-a.txt", "created\n")
    assert path.read_text() == "created\n"
    assert [p.name for p in tmp_path.iterdir()] == ["job-a.txt"]
    (tmp_path / f"{jobfiles.TEMP_PREFIX}job-b.txt").write_text("")
    with pytest.raises(FileExistsError):  # O_EXCL: never writes into another's temporary
        jobfiles.write_atomically(tmp_path, "job-b.txt", "x")


def test_paths_must_stay_inside_the_jobs_directory(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    (jobs / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (jobs / "ok.txt").write_text("")
    (jobs / "escape").symlink_to(outside)  # a directory symlink leading out
    (jobs / "inner-link.txt").symlink_to(jobs / "ok.txt")  # a symlink that stays inside
    assert safe_job_path(jobs, "ok.txt") == (jobs / "ok.txt").resolve()
    assert safe_job_path(jobs, "sub/new.txt") == (jobs / "sub" / "new.txt").resolve()
    assert safe_job_path(jobs, str(jobs / "ok.txt")) == (jobs / "ok.txt").resolve()
    assert safe_job_path(jobs, "inner-link.txt") == (jobs / "ok.txt").resolve()
    for bad in ("../outside/x", "sub/../../outside/x", "escape/x", str(outside / "x"),
                "/etc/passwd", ".", " ok.txt"):  # fmt: skip
        with pytest.raises(UnsafePath):
            safe_job_path(jobs, bad)


def test_a_jobs_directory_reached_through_a_symlink_follows_the_symlink(tmp_path: Path) -> None:
    """The consumer remembers the jobs directory's real path; pointing the symlink it
    is named by elsewhere (a new volume) must be seen at the next job, not never."""
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "sub").mkdir(parents=True)
    (second / "sub").mkdir(parents=True)
    jobs = tmp_path / "jobs"
    jobs.symlink_to(first)
    assert safe_job_path(jobs, "sub/a.txt") == first / "sub" / "a.txt"
    jobs.unlink()
    jobs.symlink_to(second)
    assert safe_job_path(jobs, "sub/a.txt") == second / "sub" / "a.txt"
    (second / "sub" / "out").symlink_to(first)  # a symlink deeper down still leads out
    with pytest.raises(UnsafePath):
        safe_job_path(jobs, "sub/out/a.txt")
    (second / "sub" / "in").symlink_to(second / "sub")
    assert safe_job_path(jobs, "sub/in/a.txt") == second / "sub" / "a.txt"


def test_payload_kinds_fall_back_to_the_file_handler() -> None:
    assert resolve("job-1.txt")[0] == "file"
    assert resolve("unknown:thing")[0:3:2] == ("file", "unknown:thing")
    assert resolve("file:job-1.txt")[0:3:2] == ("file", "job-1.txt")
