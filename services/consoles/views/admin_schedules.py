"""Admin: periodic jobs — every schedule with its cron, timezone, next and last run
(open the job of the last one), paused or not; pause, resume, add, remove."""

import datetime as dt
import zoneinfo

import pandas as pd
import streamlit as st

from pqcore import PQError, Queue
from pqcore.schedules import CATCH_UP_POLICIES, Schedule
from services.consoles import common, widgets
from services.consoles.auth import User

# How the form explains pqcore's catch-up policies (ticks missed while no manager ran).
EXPLAINED = {
    "skip": "skip: missed ticks are not run",
    "one": "one: run the newest missed tick once",
    "all": "all: run every missed tick (up to the limit)",
}


def local(epoch: float | None, timezone: str) -> str:
    """The time in the schedule's own timezone (its cron is read there)."""
    if epoch is None:
        return ""
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return ""
    return dt.datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M %Z")


def schedules_table(queue: Queue) -> list[Schedule]:
    schedules = queue.schedules()
    if not schedules:
        st.info("No schedule yet: add one below.")
        return []
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "schedule": s.name,
                    "cron": s.cron,
                    "timezone": s.timezone,
                    "state": "PAUSED" if s.paused else "active",
                    "next run (UTC)": "" if s.paused else common.when(s.next_run_at),
                    "next run (local)": "" if s.paused else local(s.next_run_at, s.timezone),
                    "last run (UTC)": common.when(s.last_enqueued_at),
                    "last job": "" if s.last_job_id is None else str(s.last_job_id),
                    "queue": s.queue,
                    "payload": s.data[:60],
                    "catch-up": s.catch_up,
                    "ticks run": s.ticks_enqueued,
                    "ticks skipped": s.ticks_skipped,
                }
                for s in schedules
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    return schedules


def act_on_schedule(queue: Queue, schedules: list[Schedule], user: User) -> None:
    if not schedules:
        return
    st.subheader("A schedule")
    by_name = {s.name: s for s in schedules}
    name = st.selectbox("Schedule", list(by_name), key="schedules_pick")
    if name is None:
        return
    schedule = by_name[name]
    if user.may("configure"):
        columns = st.columns([1, 1, 4])
        label = "Resume" if schedule.paused else "Pause"
        if columns[0].button(f"{label} {name}", key=f"schedules_{label.lower()}_{name}"):
            try:
                if schedule.paused:
                    queue.resume_schedule(name, actor=user.name)
                else:
                    queue.pause_schedule(name, actor=user.name)
            except PQError as error:
                st.error(f"{label} failed: {error}")
                return
            widgets.flash(
                "success", f"Schedule {name} {'resumed' if schedule.paused else 'paused'}"
            )
            st.rerun()
        confirmed = columns[2].checkbox(
            f"Yes, remove {name} (its jobs stay)", key=f"schedules_remove_ok_{name}"
        )
        if columns[1].button(
            f"Remove {name}", key=f"schedules_remove_{name}", disabled=not confirmed
        ):
            try:
                queue.remove_schedule(name, actor=user.name)
            except PQError as error:
                st.error(f"Remove failed: {error}")
                return
            widgets.flash("success", f"Schedule {name} removed")
            st.rerun()
    if schedule.last_job_id is None:
        st.caption("It has not enqueued a job yet.")
    elif st.toggle(f"Open its last job ({schedule.last_job_id})", key=f"schedules_open_{name}"):
        widgets.job_detail(queue, schedule.last_job_id, user, key="schedules_job")


def add_schedule(queue: Queue, user: User) -> None:
    if not user.may("configure"):
        return
    with st.expander("Add a schedule", expanded=False):
        with st.form("schedules_add"):
            top = st.columns(3)
            name = top[0].text_input("Name", key="schedules_new_name", max_chars=64)
            cron = top[1].text_input(
                "Cron (minute hour day month weekday)", key="schedules_new_cron", max_chars=120,
                placeholder="*/5 * * * *",
            )  # fmt: skip
            timezone = top[2].text_input("Timezone", "UTC", key="schedules_new_tz", max_chars=64)
            data = st.text_input("Payload", key="schedules_new_data", max_chars=4096)
            bottom = st.columns(3)
            target = bottom[0].text_input("Queue", "default", key="schedules_new_queue")
            priority = bottom[1].number_input(
                "Priority", value=0, step=1, key="schedules_new_priority"
            )
            catch_up = bottom[2].selectbox(
                "Missed ticks",
                CATCH_UP_POLICIES,
                format_func=lambda p: EXPLAINED.get(p, p),
                key="schedules_new_cu",
            )
            submitted = st.form_submit_button(
                "Add schedule", type="primary", key="schedules_add_submit"
            )
        if submitted:
            try:  # pqcore checks every field: one clear error, nothing added
                added = queue.add_schedule(
                    name.strip(), cron.strip(), data=data.strip(), queue=target.strip(),
                    timezone=timezone.strip() or "UTC", priority=int(priority),
                    catch_up=str(catch_up), actor=user.name,
                )  # fmt: skip
            except PQError as error:
                st.error(f"Not added: {error}")
                return
            widgets.flash(
                "success",
                f"Schedule {added.name} added; next run {common.when(added.next_run_at)} UTC",
            )
            st.rerun()


user = common.logged_in_user()
st.header("Schedules")
st.caption(
    "The elected manager enqueues each tick exactly once; cron is read in the schedule's timezone."
)
widgets.show_flashes()
with common.queue() as handle:
    listed = schedules_table(handle)
    act_on_schedule(handle, listed, user)
    add_schedule(handle, user)
