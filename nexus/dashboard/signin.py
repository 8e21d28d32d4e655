"""Signing in to the dashboard: an API key (read or admin) is exchanged for a sign-in held in Redis, and the
browser gets only a random token for it, in a signed HttpOnly SameSite cookie that expires.

A sign-in holds the public ids of the keys it was given (never their secrets) with their projects: a
person adds several projects' keys to one sign-in and switches between them. Every page load and every
query checks each key again through the API's key cache, so a revoked key stops working everywhere
within seconds (keys.changed moves the counter every cache watches), and signing out deletes the sign-in
itself, not just the cookie.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from html import escape
from typing import ClassVar
from urllib.parse import urlsplit

import msgspec
import redis
from bokeh.server.auth_provider import AuthProvider
from clickhouse_connect.driver.client import Client
from tornado.web import RequestHandler, decode_signed_value

from nexus.api.auth import KeyCache
from nexus.meta import keys, projects

COOKIE = "nexus_session"
_SECRET = "nexus:dashboard:cookie-secret"
_PREFIX = "nexus:dashboard:signin:"
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
HOME_PATH = "/overview"


class Grant(msgspec.Struct, frozen=True):
    """One project the person may see, through one of its keys."""

    project_id: int
    project_name: str
    timezone: str
    key_id: str
    scope: str


class _Stored(msgspec.Struct):
    grants: list[Grant]
    created_at: float


class Viewer(msgspec.Struct, frozen=True):
    """Who is signed in: the projects whose keys are still active, in the order they were added."""

    token: str
    grants: list[Grant]

    def grant(self, project_id: int | None) -> Grant | None:
        """The grant for this project (the first one when None), or None when the person has no key for it."""
        if project_id is None:
            return self.grants[0] if self.grants else None
        return next((g for g in self.grants if g.project_id == project_id), None)


class SignIns:
    def __init__(self, clickhouse: Client, redis_client: redis.Redis, hours: float):
        self.clickhouse = clickhouse
        self.redis = redis_client
        self.seconds = int(hours * 3600)
        self.keys = KeyCache(clickhouse, redis_client)

    def cookie_secret(self) -> str:
        """The secret cookies are signed with, shared by every dashboard process through Redis."""
        self.redis.set(_SECRET, secrets.token_urlsafe(48), nx=True)
        return self.redis.get(_SECRET).decode()

    def sign_in(self, secret: str, token: str | None) -> str | None:
        """Add the key's project to the sign-in of `token` (or to a new one); its token, or None when the
        secret is not an active read or admin key of a project."""
        key = keys.authenticate(self.clickhouse, secret.strip())
        if key is None or not key.allows("read"):
            return None
        project = projects.get(self.clickhouse, key.project_id)
        grant = Grant(key.project_id, project.name, project.timezone, key.key_id, key.scope)
        stored = self._load(token) if token else None
        if stored is None:
            token, stored = secrets.token_urlsafe(32), _Stored([], time.time())
        # A newer key for a project replaces the older one.
        stored.grants = [g for g in stored.grants if g.project_id != grant.project_id] + [grant]
        self.redis.set(self._name(token), msgspec.json.encode(stored), ex=self.seconds)
        return token

    def viewer(self, token: str | None) -> Viewer | None:
        """Who holds this token, with only the grants whose keys are still active; None when nothing is left."""
        stored = self._load(token) if token else None
        if stored is None:
            return None
        grants = [g for g in stored.grants if (key := self.keys.active(g.key_id)) is not None and key.allows("read")]
        return Viewer(token, grants) if grants else None

    def sign_out(self, token: str | None) -> None:
        if token:
            self.redis.delete(self._name(token))

    def token_from_cookie(self, value: str | bytes | None) -> str | None:
        """The token inside a signed cookie's value, or None if it is missing, forged or expired."""
        if not value:
            return None
        decoded = decode_signed_value(self.cookie_secret(), COOKIE, value, max_age_days=self.seconds / 86400)
        return decoded.decode() if decoded else None

    def _load(self, token: str) -> _Stored | None:
        raw = self.redis.get(self._name(token))
        return msgspec.json.decode(raw, type=_Stored) if raw else None

    @staticmethod
    def _name(token: str) -> str:
        return _PREFIX + hashlib.sha256(token.encode()).hexdigest()


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never another host, never `//host`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return HOME_PATH
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else HOME_PATH


class _Handler(RequestHandler):
    signins: ClassVar[SignIns]
    secure_cookies: ClassVar[bool] = False

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy",
                        "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; "
                        "frame-ancestors 'none'; base-uri 'none'")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("Cache-Control", "no-store")

    def current_token(self) -> str | None:
        return self.signins.token_from_cookie(self.get_cookie(COOKIE))

    def same_origin(self) -> bool:
        """A form post from this site: browsers send Origin with POSTs, so another site's is refused."""
        origin = self.request.headers.get("Origin")
        return origin is None or urlsplit(origin).netloc == self.request.host


class LoginHandler(_Handler):
    def get(self) -> None:
        self._form(self.get_argument("next", HOME_PATH), "")

    def post(self) -> None:
        target = safe_next(self.get_body_argument("next", HOME_PATH))
        if not self.same_origin():
            self.set_status(403)
            self._form(target, "This sign-in form was sent from another site.")
            return
        token = self.signins.sign_in(self.get_body_argument("key", ""), self.current_token())
        if token is None:
            self.set_status(401)
            self._form(target, "That is not an active read or admin key of a project.")
            return
        self.set_cookie(COOKIE, self.create_signed_value(COOKIE, token).decode(), httponly=True,
                        samesite="Lax", secure=self.request.protocol == "https",
                        expires_days=self.signins.seconds / 86400, path="/")
        self.redirect(target)

    def _form(self, target: str, message: str) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(LOGIN_PAGE.format(next=escape(safe_next(target)), message=escape(message),
                                      shown="block" if message else "none"))


class LogoutHandler(_Handler):
    def get(self) -> None:
        self.post()

    def post(self) -> None:
        self.signins.sign_out(self.current_token())
        self.clear_cookie(COOKIE, path="/")
        self.redirect(LOGIN_PATH)


class DashboardAuth(AuthProvider):
    """Bokeh's hook: a page or its websocket opens only for a valid sign-in; others go to the sign-in page."""

    def __init__(self, signins: SignIns, secure_cookies: bool = False):
        self.signins = signins
        attributes = {"signins": signins, "secure_cookies": secure_cookies}
        self._login = type("NexusLogin", (LoginHandler,), attributes)
        self._logout = type("NexusLogout", (LogoutHandler,), attributes)
        super().__init__()

    @property
    def get_user(self):
        def user(handler: RequestHandler) -> str | None:
            viewer = self.signins.viewer(self.signins.token_from_cookie(handler.get_cookie(COOKIE)))
            return viewer.grants[0].key_id if viewer else None
        return user

    @property
    def login_url(self) -> str:
        return LOGIN_PATH

    @property
    def login_handler(self) -> type[RequestHandler]:
        return self._login

    @property
    def logout_url(self) -> str:
        return LOGOUT_PATH

    @property
    def logout_handler(self) -> type[RequestHandler]:
        return self._logout


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · Nexus</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; background: #f5f6f8; color: #1d2330; display: grid;
       place-items: center; min-height: 100vh; margin: 0; }}
form {{ background: #fff; padding: 2rem 2.25rem; border-radius: 10px; box-shadow: 0 2px 12px #0002; width: 24rem; }}
h1 {{ font-size: 1.3rem; margin: 0 0 .3rem; }} p {{ color: #555; font-size: .9rem; margin: 0 0 1.2rem; }}
label {{ font-size: .85rem; font-weight: 600; }}
input[type=password] {{ width: 100%; box-sizing: border-box; padding: .55rem .6rem; margin: .35rem 0 1rem;
       border: 1px solid #bbb; border-radius: 6px; font-family: monospace; }}
button {{ width: 100%; padding: .6rem; border: 0; border-radius: 6px; background: #0072b2; color: #fff;
       font-weight: 600; cursor: pointer; }}
.error {{ display: {shown}; color: #b00020; background: #fdecee; padding: .5rem .6rem; border-radius: 6px;
       font-size: .85rem; margin-bottom: 1rem; }}
@media (prefers-color-scheme: dark) {{ body {{ background: #15181e; color: #e6e8ec; }}
  form {{ background: #1f232b; }} p {{ color: #a9afba; }} input[type=password] {{ background: #15181e; color: #e6e8ec; }} }}
</style></head>
<body><form method="post" action="/login">
<h1>Nexus</h1><p>Sign in with a read or admin API key of a project. Add another project's key later to switch between them.</p>
<div class="error" role="alert">{message}</div>
<label for="key">API key</label>
<input type="password" id="key" name="key" autocomplete="off" autofocus required placeholder="nx_…">
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form></body></html>
"""
