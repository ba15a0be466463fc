"""Admin: runtime settings (value, default, where it comes from, who changed it when),
changed here and picked up by running services within seconds; the audit trail of
every operator change outside a job's history (pauses, limits, settings, schedules)."""

import pandas as pd
import streamlit as st

from pqcore import PQError, Queue
from services.consoles import common, widgets
from services.consoles.auth import User

AUDIT_SHOWN = 100
AUDIT_SCOPES = {
    "everything": "",
    "settings": "setting:",
    "queues": "queue:",
    "schedules": "schedule:",
}


def shown(value: object) -> str:
    return "" if value is None else str(value)


def settings_table(queue: Queue) -> list[str]:
    settings = queue.config_list()
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "setting": s.name,
                    "value": shown(s.value),
                    "default": shown(s.default),
                    "source": s.source,
                    "changed by": s.updated_by or "",
                    "changed at (UTC)": common.when(s.updated_at),
                    "meaning": s.description,
                }
                for s in settings
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    return [s.name for s in settings]


def edit_setting(queue: Queue, names: list[str], user: User) -> None:
    if not user.may("configure") or not names:
        return
    st.subheader("Change a setting")
    name = st.selectbox("Setting", names, key="settings_pick")
    if name is None:
        return
    current = queue.config_get(name)
    st.caption(
        f"{current.description} · now {current.value} ({current.source}), default {current.default}"
    )
    with st.form("settings_edit"):
        typed = st.text_input(
            "New value", shown(current.value), key=f"settings_value_{name}", max_chars=64
        )
        left, right = st.columns([1, 5])
        save = left.form_submit_button("Save", type="primary", key="settings_save")
        reset = right.form_submit_button("Reset to default", key="settings_reset")
    if save or reset:
        try:
            if reset:
                changed = queue.config_reset(name, actor=user.name)
            else:
                changed = queue.config_set(name, typed.strip(), actor=user.name)
        except PQError as error:  # InvalidArgument: the value named and why; nothing changed
            st.error(f"Not changed: {error}")
            return
        widgets.flash("success", f"Setting {name} is now {changed.value} ({changed.source})")
        st.rerun()


def audit_trail(queue: Queue) -> None:
    st.subheader("Audit trail")
    scope = st.selectbox("Show", list(AUDIT_SCOPES), key="settings_audit_scope")
    prefix = AUDIT_SCOPES[scope]
    entries = [e for e in queue.audit_log(limit=AUDIT_SHOWN) if e.target.startswith(prefix)]
    if not entries:
        st.caption("No change recorded yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "when (UTC)": common.when(e.at),
                    "by": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "old": e.old_value or "",
                    "new": e.new_value or "",
                    "detail": e.detail or "",
                }
                for e in entries
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption(f"The newest {AUDIT_SHOWN} changes, newest first.")


user = common.logged_in_user()
st.header("Settings")
st.caption(
    "Environment variables give the defaults; a value set here is stored in the database"
    " and running services pick it up within a few seconds, without a restart."
)
widgets.show_flashes()
with common.queue() as handle:
    names = settings_table(handle)
    edit_setting(handle, names, user)
    audit_trail(handle)
