"""Both consoles: every queue with its counts, whether it is paused (by whom, when, why)
and its limits. Pause and resume: anyone who may act (ops too). Limits: admins."""

import pandas as pd
import streamlit as st

from pqcore import Consumer, ConsumerState, JobState, PQError, Queue
from pqcore.models import QueueControl
from services.consoles import browser, common, filters, widgets
from services.consoles.auth import User

# Columns of the table, in order: a state's count, under the label the consoles use.
COUNTED = (
    JobState.PENDING,
    JobState.PROCESSING,
    JobState.FAILED,
    JobState.PERMANENTLY_FAILED,
    JobState.DONE,
    JobState.CANCELLED,
)
# (set_limits argument, QueueControl field, label)
LIMITS = (
    ("concurrency", "concurrency_limit", "Concurrency (jobs running at once)"),
    ("key_concurrency", "key_concurrency_limit", "Per-key concurrency"),
    ("rate", "rate_limit", "Rate (claims per period)"),
    ("key_rate", "key_rate_limit", "Per-key rate"),
)


def rate_text(count: int | None, period: float | None) -> str:
    return "" if count is None else f"{count} / {period or 1:g}s"


def limit_text(value: int | None) -> str:
    return "" if value is None else str(value)


THROUGHPUT_MINUTES = 15
LIVE = (ConsumerState.IDLE, ConsumerState.BUSY)


def serving(consumers: list[Consumer], name: str) -> list[Consumer]:
    """The live consumers that claim from queue ``name`` (``*``: every queue)."""
    return [
        c
        for c in consumers
        if c.state in LIVE and (c.queues.strip() in ("", "*") or name in c.queues.split(","))
    ]


def queues_frame(queue: Queue, names: list[str]) -> pd.DataFrame:
    """Per queue: its jobs by state, how long the oldest has waited, what moved in the
    last minutes and which live consumers take from it."""
    now = common.now()
    moved = queue.queue_throughput(now - THROUGHPUT_MINUTES * 60)
    consumers = queue.consumers()
    rows = []
    for name in names:
        stats = queue.stats(name)
        flow = moved.get(name)
        live = serving(consumers, name)
        row: dict[str, object] = {"queue": name}
        row.update({widgets.STATUS_LABELS[s]: stats.counts[s.value] for s in COUNTED})
        row["oldest pending"] = (
            "" if stats.oldest_pending_age is None else common.age(stats.oldest_pending_age)
        )
        row["done/min"] = round((flow.completed if flow else 0) / THROUGHPUT_MINUTES, 1)
        row["failed/min"] = round((flow.failed if flow else 0) / THROUGHPUT_MINUTES, 1)
        row["consumers"] = f"{len(live)}: " + ", ".join(sorted(c.id for c in live)) if live else "0"
        rows.append(row)
    return pd.DataFrame(rows)


def controls_frame(names: list[str], controls: dict[str, QueueControl]) -> pd.DataFrame:
    """Per queue with a pause or a limit: who paused it, when, why, and its limits."""
    rows = []
    for name in names:
        control = controls.get(name)
        if control is None:
            continue
        paused = control.paused
        rows.append(
            {
                "queue": name,
                "paused": "PAUSED" if paused else "",
                "paused by": control.paused_by if paused else "",
                "paused at (UTC)": common.when(control.paused_at) if paused else "",
                "reason": (control.pause_reason or "") if paused else "",
                "concurrency": limit_text(control.concurrency_limit),
                "per-key concurrency": limit_text(control.key_concurrency_limit),
                "rate": rate_text(control.rate_limit, control.rate_period),
                "per-key rate": rate_text(control.key_rate_limit, control.rate_period),
            }
        )
    return pd.DataFrame(rows)


def pause_controls(queue: Queue, name: str, control: QueueControl | None, user: User) -> None:
    if not user.may("act"):
        return
    paused = control is not None and control.paused
    reason_text = st.text_input(
        "Reason (recorded in the audit trail)", key=f"queues_reason_{name}", max_chars=500
    )
    label = "Resume" if paused else "Pause"
    if st.button(f"{label} {name}", key=f"queues_{label.lower()}_{name}", type="primary"):
        try:
            reason = filters.clean_reason(reason_text)
            if paused:
                queue.resume(name, actor=user.name, reason=reason)
            else:
                queue.pause(name, actor=user.name, reason=reason)
        except filters.InputError as error:
            st.error(str(error))
            return
        except PQError as error:
            st.error(f"{label} failed: {error}")
            return
        if paused:
            widgets.flash("success", f"Queue {name} resumed: consumers claim from it again")
        else:
            widgets.flash(
                "success", f"Queue {name} paused: nothing is claimed from it, running jobs finish"
            )
        st.rerun()


def limit_controls(queue: Queue, name: str, control: QueueControl | None, user: User) -> None:
    if not user.may("configure"):
        return
    st.markdown("**Limits** (across every consumer and host; blank: no limit)")
    with st.form(f"queues_limits_{name}"):
        columns = st.columns(5)
        typed = {}
        for column, (argument, field, label) in zip(columns, LIMITS, strict=False):
            current = getattr(control, field) if control else None
            typed[argument] = column.text_input(
                label, limit_text(current), key=f"queues_{argument}_{name}", max_chars=12
            )
        period = columns[4].text_input(
            "Rate period, seconds",
            "" if control is None or control.rate_period is None else f"{control.rate_period:g}",
            key=f"queues_rate_period_{name}",
            max_chars=12,
        )
        submitted = st.form_submit_button("Save limits", key=f"queues_save_{name}")
    if submitted:
        try:
            values = {
                argument: filters.parse_limit(typed[argument], label)
                for argument, _, label in LIMITS
            }
            seconds = filters.parse_seconds(period, "the rate period")
            queue.set_limits(name, actor=user.name, rate_period=seconds, **values)
        except filters.InputError as error:
            st.error(str(error))
            return
        except PQError as error:
            st.error(f"Limits not saved: {error}")
            return
        widgets.flash("success", f"Limits of queue {name} saved")
        st.rerun()


def queues_page(queue: Queue, user: User) -> None:
    controls = queue.controls()
    names = sorted(set(queue.queue_names()) | set(controls))
    if not names:
        st.info("No queue holds jobs yet.")
        return
    st.dataframe(queues_frame(queue, names), hide_index=True, width="stretch")
    st.caption(
        f"Oldest pending: how long the oldest runnable job has waited. done/min and failed/min:"
        f" the last {THROUGHPUT_MINUTES} minutes. Consumers: the live ones claiming from it."
    )
    limited = controls_frame(names, controls)
    if len(limited):
        st.markdown("**Paused and limited queues**")
        st.dataframe(limited, hide_index=True, width="stretch")
    if not user.may("act"):
        return
    st.subheader("Change a queue")
    name = st.selectbox("Queue", names, key="queues_pick")
    if name is None:
        return
    control = controls.get(name)
    if control is not None and control.paused:
        st.warning(
            f"Queue {name} is paused since {common.when(control.paused_at)} UTC by"
            f" {control.paused_by}" + (f": {control.pause_reason}" if control.pause_reason else "")
        )
    pause_controls(queue, name, control, user)
    limit_controls(queue, name, control, user)


user = common.logged_in_user()
st.header("Queues")
browser.refresh_control("queues")
widgets.show_flashes()
with common.queue() as handle:
    queues_page(handle, user)
browser.auto_refresh("queues")
