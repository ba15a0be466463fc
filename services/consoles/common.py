"""What every console page needs: the page frame, the login gate, the queue, formatting.

Each script run opens its own queue handle and closes it at the end: Streamlit runs
every rerun (and every fragment refresh) on a fresh thread, and a long-lived handle
would collect one SQLite connection per thread.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from pqcore import PQError, Queue, QueueSettings, open_queue
from services.common.claims import ClaimWatch
from services.consoles import auth

SESSION_KEY = "pq_session"


# ------------------------------------------------------------------ the queue


def database() -> str:
    return QueueSettings.from_env().db


@contextmanager
def queue() -> Iterator[Queue]:
    """The queue for this script run; a storage problem stops the page with one clear error."""
    try:
        handle = open_queue(database(), create=False)
    except PQError as error:
        st.error(f"Cannot open the queue: {error}")
        st.stop()
    try:
        yield handle
    except PQError as error:  # e.g. the database stayed locked: say so, keep the page
        st.error(f"The queue reported an error: {error}")
    finally:
        handle.close()


@st.cache_resource
def _claim_watch(db: str) -> ClaimWatch:
    return ClaimWatch()


def claim_watch() -> ClaimWatch:
    """One per process and database: each refresh reads only the history that is new."""
    return _claim_watch(database())


# ------------------------------------------------------------------ login


@st.cache_resource
def _authenticator(signature: str) -> auth.Authenticator:
    """One per process and configuration (the signature changes when the config does)."""
    users = auth.load_users()
    if not users:
        password = auth.new_one_time_password()
        users = {
            auth.ONE_TIME_USER: auth.User(auth.ONE_TIME_USER, "admin", auth.hash_password(password))
        }
        # No users configured: never leave the console open. The log is the only place
        # this password appears.
        print(
            f"pq console: no users configured ({auth.USERS_ENV}); one-time login: "
            f"user {auth.ONE_TIME_USER!r}, password {password!r}",
            file=sys.stdout,
            flush=True,
        )
    return auth.Authenticator(users)


def authenticator() -> auth.Authenticator:
    signature = "|".join(os.environ.get(k, "") for k in (auth.USERS_ENV, auth.ONE_TIME_HASH_ENV))
    users_file = os.environ.get(auth.USERS_ENV, "").strip()
    if users_file:
        try:  # an edited users file takes effect without a restart
            signature += f"|{os.stat(users_file).st_mtime_ns}"
        except OSError:
            pass
    try:
        return _authenticator(signature)
    except auth.ConfigError as error:
        st.error(f"Console configuration error: {error}")
        st.stop()


def current_user() -> auth.User | None:
    """The logged-in user of this browser session, or None once the session timed out."""
    session = st.session_state.get(SESSION_KEY)
    if not session:
        return None
    try:
        limit = auth.session_seconds()
    except auth.ConfigError as error:
        st.error(str(error))
        st.stop()
    if time.monotonic() - session["last_seen"] > limit:
        st.session_state.pop(SESSION_KEY, None)
        st.session_state["pq_notice"] = "Your session timed out; please log in again."
        return None
    return session["user"]  # type: ignore[no-any-return]


def touch_session() -> None:
    """Mark user activity (a full rerun); an auto-refresh alone does not keep a session."""
    session = st.session_state.get(SESSION_KEY)
    if session:
        session["last_seen"] = time.monotonic()


def require_login(title: str) -> auth.User:
    """Show the login form and stop the script until someone logs in."""
    gate = authenticator()
    user = current_user()
    if user is not None:
        touch_session()
        return user
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        _login_form(gate, title)
    st.stop()


def _login_form(gate: auth.Authenticator, title: str) -> None:
    st.title(title)
    notice = st.session_state.pop("pq_notice", None)
    if notice:
        st.info(notice)
    with st.form("login"):
        name = st.text_input("User", key="login_user", max_chars=64)
        password = st.text_input(
            "Password", type="password", key="login_password", max_chars=auth.MAX_PASSWORD
        )
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        locked = gate.locked_for(name.strip())
        found = gate.login(name, password)
        if found is not None:
            # The session keeps who and which role, never the hash.
            who = auth.User(found.name, found.role, password_hash="")
            st.session_state[SESSION_KEY] = {"user": who, "last_seen": time.monotonic()}
            del st.session_state["login_password"]  # not kept in memory for the session
            st.rerun()
        elif locked > 0:
            st.error(f"Too many failed attempts; try again in {locked:.0f} seconds.")
        else:
            st.error("Wrong user name or password.")


def logged_in_user() -> auth.User:
    """For pages, which run after the entry script's login gate."""
    user = current_user()
    if user is None:
        st.stop()
    return user


def logout_button(user: auth.User) -> None:
    with st.sidebar:
        st.caption(f"Logged in as **{user.name}** ({user.role})")
        if st.button("Log out", key="logout"):
            st.session_state.pop(SESSION_KEY, None)
            st.rerun()


def page_frame(title: str, icon: str) -> None:
    st.set_page_config(page_title=title, page_icon=icon, layout="wide")


# ------------------------------------------------------------------ formatting


def when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"
