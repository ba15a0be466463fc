"""The admin's actions on many jobs: a selection from the page, or every job matching
the filter. Both need a confirmation that belongs to exactly what was confirmed (these
jobs, this count) and record a reason in each job's history."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from pqcore import InvalidArgument, Job, JobChanged, JobFilter, JobState, PQError, Queue
from pqcore.states import can
from services.consoles import filters, taskview
from services.consoles.auth import User
from services.consoles.widgets import (
    ACTIONS,
    changed_message,
    flash,
    flashes_pending,
    label,
    show_flashes,
    with_queue,
)


def selection_actions(jobs: Sequence[Job], user: User, key: str) -> None:
    """Act on jobs picked from the current page, after a confirmation, with a reason."""
    if not user.may("bulk") or not jobs:
        return
    by_id = {j.id: j for j in jobs}
    area = f"{key}-selected"
    with st.expander("Act on selected jobs", expanded=any(f[0] == area for f in flashes_pending())):
        show_flashes(area)  # what the last click did, where it was clicked
        picked_key, action_key = f"{key}_picked", f"{key}_picked_action"
        reason_key = f"{key}_picked_reason"
        picked = [
            i for i in st.multiselect(
                "Jobs on this page", list(by_id), key=picked_key,
                format_func=lambda i: f"{i} · {label(by_id[i].status)} · "
                                      f"{taskview.what(by_id[i], 40)}",
            ) if i in by_id
        ]  # fmt: skip
        name = st.selectbox("Action", list(ACTIONS), key=action_key)
        st.text_input("Reason (recorded in each job's history)", key=reason_key, max_chars=500)
        # The confirmation belongs to these jobs and this action: pick others, confirm again.
        confirm_key = f"{key}_picked_confirm_{name}_{'-'.join(map(str, sorted(picked)))}"
        confirmed = st.checkbox(
            f"Yes, {name.lower()} these {len(picked)} jobs", key=confirm_key, disabled=not picked
        )

        def apply_selected() -> None:
            try:
                reason = filters.clean_reason(str(st.session_state.get(reason_key, "")))
            except filters.InputError as error:
                flash("error", str(error), area)
                return

            def run(queue: Queue) -> None:
                applied, refused = 0, []
                for job_id in picked:
                    try:
                        queue.operator_action(ACTIONS[name], job_id, actor=user.name, reason=reason)
                        applied += 1
                    except JobChanged as error:
                        refused.append(changed_message(error))
                    except PQError as error:
                        refused.append(f"{job_id}: {error}")
                flash(
                    "success", f"{name}: applied to {applied} of {len(picked)} selected jobs", area
                )
                if refused:
                    flash("warning", "Not applied: " + "; ".join(refused[:10]), area)

            with_queue(run, area)
            for done_key in (picked_key, reason_key, confirm_key):
                st.session_state.pop(done_key, None)

        st.button(
            "Apply to selected",
            key=f"{key}_picked_apply",
            disabled=not (picked and confirmed),
            type="primary",
            on_click=apply_selected,
        )


def filter_actions(
    queue: Queue, flt: JobFilter, user: User, key: str, *, expanded: bool = False
) -> None:
    """Act on every job matching the filter: shows the count and asks for confirmation."""
    if not user.may("bulk"):
        return
    # Counting the matching jobs can take a scan (a time range, a text): only while open.
    box = st.expander(
        "Act on all jobs matching the filter",
        expanded=expanded,
        key=f"{key}_all_open" + ("_ready" if expanded else ""),  # ready: opens by itself
        on_change="rerun",
    )
    with box:
        if not box.open:
            return
        show_flashes(f"{key}-all")  # what the last click did, where it was clicked
        name = st.selectbox("Action", list(ACTIONS), key=f"{key}_all_action")
        transition = ACTIONS[name]
        eligible = [s for s in (flt.statuses or tuple(JobState)) if can(transition, s)]
        if not eligible:
            st.caption(f"No job matching the filter can take {name.lower()}.")
            return
        target = JobFilter(
            tuple(eligible), flt.queue, flt.text, flt.created_after, flt.created_before,
            flt.error_group,
        )  # fmt: skip
        try:
            count = queue.count_jobs(target)
        except (InvalidArgument, PQError) as error:
            st.error(str(error))
            return
        st.write(f"**{count:,}** jobs ({filters.describe(target)}) can take {name.lower()}.")
        reason_text = st.text_input(
            "Reason (recorded in each job's history)", key=f"{key}_all_reason", max_chars=500
        )
        # The confirmation belongs to this count: if the count changes before the click,
        # the box is a new, unticked one and the action waits for a new confirmation.
        confirmed = st.checkbox(
            f"Yes, {name.lower()} these {count:,} jobs", key=f"{key}_all_confirm_{name}_{count}"
        )
        clicked = st.button(
            f"{name} all matching",
            key=f"{key}_all_apply",
            disabled=not (confirmed and count),
            type="primary",
        )
        if clicked and not confirmed:  # a disabled button is only the browser's promise
            st.warning("The matching jobs changed; check the count and confirm again.")
        if clicked and confirmed:
            try:
                reason = filters.clean_reason(reason_text)
                # No more than were confirmed.
                applied, skipped = queue.bulk_action(
                    transition, target, actor=user.name, reason=reason, limit=count
                )
            except filters.InputError as error:
                st.error(str(error))
                return
            except PQError as error:
                st.error(f"{name} failed: {error}")
                return
            flash(
                "success", f"{name}: applied to {applied:,} jobs ({skipped:,} had changed)",
                f"{key}-all",
            )  # fmt: skip
            st.session_state.pop(f"{key}_all_reason", None)
            st.rerun()
