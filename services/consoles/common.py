"""What every console page needs: the page frame, the login gate, the queue, formatting.

Each script run opens its own queue handle and closes it at the end: Streamlit runs
every rerun (and every fragment refresh) on a fresh thread, and a long-lived handle
would collect one SQLite connection per thread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from pqcore import PQError, Queue, QueueSettings, open_queue
from services.common.claims import ClaimWatch
from services.consoles import auth, metrics

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

NOTICE_KEY = "pq_notice"
COOKIES_KEY = "pq_cookies"  # the cookies the browser should hold (or drop): see write_cookies
AUTO_RERUN_KEY = "pq_auto_rerun"  # set by an auto-refresh: that rerun is not activity


def console_name() -> str:
    return str(st.session_state.get("pq_console", "admin"))


@st.cache_resource
def _authenticator(signature: str, console: str) -> auth.Authenticator:
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
    return auth.Authenticator(
        users,
        observer=lambda event, client, name, wait: metrics.observe_login(
            console, event, client, name, wait
        ),
    )


@st.cache_resource
def _sessions(console: str) -> auth.Sessions:
    """This process's live sessions: a restart ends them all."""
    return auth.Sessions()


def authenticator() -> auth.Authenticator:
    signature = "|".join(os.environ.get(k, "") for k in (auth.USERS_ENV, auth.ONE_TIME_HASH_ENV))
    users_file = os.environ.get(auth.USERS_ENV, "").strip()
    if users_file:
        try:  # an edited users file takes effect without a restart
            signature += f"|{os.stat(users_file).st_mtime_ns}"
        except OSError:
            pass
    try:
        return _authenticator(signature, console_name())
    except auth.ConfigError as error:
        st.error(f"Console configuration error: {error}")
        st.stop()


def sessions() -> auth.Sessions:
    return _sessions(console_name())


def session_cookie() -> str:
    return f"pq_{console_name()}_session"


def current_user() -> auth.User | None:
    """The logged-in user of this browser session, or None once the session timed out,
    was revoked (logged out in another tab) or its user was removed."""
    session = st.session_state.get(SESSION_KEY)
    if not session:
        return None
    try:
        limit = auth.session_seconds()
    except auth.ConfigError as error:
        st.error(str(error))
        st.stop()
    token = session.get("token", "")
    if time.monotonic() - session["last_seen"] > limit:
        end_session("Your session timed out; please log in again.")
        return None
    if not sessions().alive(token, authenticator().users):
        end_session("Your session ended (logged out, timed out or changed); please log in again.")
        return None
    return session["user"]  # type: ignore[no-any-return]


def end_session(notice: str | None = None) -> None:
    """Revoke this browser's session and drop its cookie."""
    session = st.session_state.pop(SESSION_KEY, None)
    if session and session.get("token"):
        sessions().revoke(session["token"])
    set_cookies([(session_cookie(), "", 0)])
    if notice:
        st.session_state[NOTICE_KEY] = notice


def touch_session() -> None:
    """Mark user activity (a full rerun); an auto-refresh alone does not keep a session."""
    if st.session_state.pop(AUTO_RERUN_KEY, False):
        return
    session = st.session_state.get(SESSION_KEY)
    if session:
        session["last_seen"] = time.monotonic()
        sessions().touch(session.get("token", ""))


def cookie(name: str) -> str:
    """A cookie the browser sent when it opened this session ("" if none)."""
    try:
        value = st.context.cookies.get(name)
    except Exception:  # no browser (bare mode)
        return ""
    return value if isinstance(value, str) else ""


def client_address() -> str:
    try:
        address = st.context.ip_address
    except Exception:
        return "unknown"
    return address if isinstance(address, str) and address else "unknown"


def resume_from_cookie() -> auth.User | None:
    """After a reload: the session the browser's cookie names, if it is still live."""
    token = cookie(session_cookie())
    if not token:
        return None
    found = sessions().resume(token, authenticator().users)
    if found is None:
        set_cookies([(session_cookie(), "", 0)])  # stale: drop it
        return None
    st.session_state[SESSION_KEY] = {
        "user": found, "last_seen": time.monotonic(), "token": token
    }  # fmt: skip
    return found


def logged_in(console: str) -> auth.User | None:
    """The user of this browser session (resumed from its cookie after a reload), or None.

    Call before ``st.navigation``, which must run on every rerun (hidden before the
    login) so the page and query a URL asked for are still there after the login."""
    st.session_state["pq_console"] = console
    authenticator()  # a broken configuration stops here, before any form
    user = current_user() or resume_from_cookie()
    if user is not None:
        touch_session()
    return user


def login_form(title: str) -> None:
    """The login form, centred; stops the script. The requested URL stays as it is, so
    a successful login lands on the page (and job, filters) it asked for."""
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        _login_form(authenticator(), title)
    write_cookies()
    st.stop()


def client_id(name: str, gate: auth.Authenticator) -> str:
    """Who is trying to log in, for the throttle: a browser holding a device token for
    ``name`` (issued at a successful login there) is its own client; anyone else is
    their IP address."""
    token = cookie(auth.device_cookie_name(name))
    if token and auth.trusted_device(token, gate.users.get(name)):
        return "device:" + hashlib.sha256(token.encode()).hexdigest()[:12]
    return f"ip:{client_address()}"


def _login_form(gate: auth.Authenticator, title: str) -> None:
    st.title(title)
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.info(notice)
    with st.form("login"):
        name = st.text_input("User", key="login_user", max_chars=64)
        password = st.text_input(
            "Password", type="password", key="login_password", max_chars=auth.MAX_PASSWORD
        )
        submitted = st.form_submit_button("Log in", type="primary")
    if not submitted:
        return
    client = client_id(name.strip(), gate)
    found = gate.login(name, password, client)
    if found is not None:
        # The session keeps who and which role, never the hash; the browser keeps a
        # signed token naming the session, so a reload finds it again.
        who = auth.User(found.name, found.role, password_hash="")
        token = sessions().issue(who)
        st.session_state[SESSION_KEY] = {"user": who, "last_seen": time.monotonic(), "token": token}
        set_cookies([
            (session_cookie(), token, int(auth.SESSION_MAX_SECONDS)),
            (auth.device_cookie_name(found.name), auth.device_token(found),
             int(auth.DEVICE_SECONDS)),
        ])  # fmt: skip
        metrics.LOGINS.labels(console=console_name()).inc()
        del st.session_state["login_password"]  # not kept in memory for the session
        st.rerun()
    locked = gate.locked_for(name, client)
    if locked > 0:
        st.error(f"Too many failed attempts; try again in {locked:.0f} seconds.")
    else:
        st.error("Wrong user name or password.")


def set_cookies(wanted: list[tuple[str, str, int]]) -> None:
    """Ask the browser to set these cookies (name, value, max-age; 0 drops it)."""
    previous = st.session_state.get(COOKIES_KEY) or {"nonce": secrets.token_hex(8), "seq": 0}
    st.session_state[COOKIES_KEY] = {
        "nonce": previous["nonce"], "seq": previous["seq"] + 1, "wanted": wanted
    }  # fmt: skip


def write_cookies() -> None:
    """Have the browser hold the cookies last asked for (``set_cookies``).

    Streamlit reads cookies (``st.context.cookies``) but cannot set them, so a script
    in the page does; only names and values this module made (base64url) go in it.
    The script is drawn on every run, so a run cut short by another cannot lose it,
    and numbered: the browser applies each request once, never an older one after a
    newer (the login form's "drop" after the next login's "set")."""
    request = st.session_state.get(COOKIES_KEY)
    if not request:
        return
    lines = [
        f"document.cookie = {json.dumps(f'{name}={value}')} + "
        f"'; Path=/; Max-Age={int(age)}; SameSite=Strict' + secure;"
        for name, value, age in request["wanted"]
    ]
    script = (
        "(() => {const secure = location.protocol === 'https:' ? '; Secure' : '';"
        f" const key = 'pq_cookies_{console_name()}', nonce = '{request['nonce']}';"
        f" const seq = {int(request['seq'])};"
        " const [had, done] = (sessionStorage.getItem(key) || ':0').split(':');"
        " if (had === nonce && Number(done) >= seq) return;\n"
        + "\n".join(lines)
        + "\nsessionStorage.setItem(key, nonce + ':' + seq);})();"
    )
    st.html("<script>" + script + "</script>", unsafe_allow_javascript=True)


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
            end_session()
            st.rerun()
        write_cookies()


def page_frame(title: str, icon: str) -> None:
    st.set_page_config(page_title=title, page_icon=icon, layout="wide")
    # Wide tables get the width of a laptop screen: less padding, a narrower sidebar.
    st.html(
        "<style>[data-testid='stMainBlockContainer']"
        " {padding-left: 2rem; padding-right: 2rem; padding-top: 2.5rem;}"
        " section[data-testid='stSidebar'] {width: 230px !important; min-width: 230px !important;}"
        "</style>"
    )


# ------------------------------------------------------------------ formatting


def now() -> float:
    return time.time()


def when(epoch: float | None) -> str:
    """UTC, to the second: what tables and the history show."""
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


def relative(epoch: float | None, now: float | None = None) -> str:
    """ "5m ago", "in 2m" or "now"."""
    if epoch is None:
        return ""
    delta = (time.time() if now is None else now) - epoch
    if abs(delta) < 1:
        return "now"
    return f"{age(delta)} ago" if delta > 0 else f"in {age(-delta)}"


def browser_zone() -> ZoneInfo | None:
    """The browser's time zone, if it told us one (st.context.timezone)."""
    try:
        name = st.context.timezone
    except Exception:  # no browser: AppTest, bare mode
        return None
    if not isinstance(name, str) or not name or name == "UTC":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def when_local(epoch: float | None) -> str:
    """The time in the browser's zone ("03:13:21 CET"), or "" when that is UTC."""
    zone = browser_zone()
    if epoch is None or zone is None:
        return ""
    return dt.datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def when_full(epoch: float | None, now: float | None = None) -> str:
    """UTC, the browser's local time and how long ago: "… UTC · … CET · 5m ago"."""
    if epoch is None:
        return ""
    parts = [when(epoch) + " UTC", when_local(epoch), relative(epoch, now)]
    return " · ".join(p for p in parts if p)
