"""Standard OAuth2 client libraries against a running server, used as their
documentation tells users to: requests-oauthlib (the password grant through
oauthlib's LegacyApplicationClient, refresh, auto-refresh) and authlib
(password grant, refresh, auto-refresh, RFC 7009 revocation).

    python3 interop/clients/oauth_clients.py http://127.0.0.1:PORT

Prints the libraries' versions, then one line per check, as run.sh does:
"ok      NAME" or "FAILED  NAME: why". Exits non-zero if any check failed.
Each check starts its own login, so one check's revoked session never
affects another's. Nothing here works around the server: a library that
refuses an answer fails its check.
"""

import base64
import json
import os
import sys
import time
import urllib.parse

# Both libraries refuse plain http:// unless told it is a test; the server
# listens on loopback only here.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
# oauthlib's default: a grant narrower than asked is raised as a Warning.
os.environ.pop("OAUTHLIB_RELAX_TOKEN_SCOPE", None)

import authlib  # noqa: E402
import oauthlib  # noqa: E402
import requests  # noqa: E402
import requests_oauthlib  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession  # noqa: E402
from authlib.integrations.base_client import OAuthError  # noqa: E402
from oauthlib.oauth2 import InvalidGrantError, LegacyApplicationClient  # noqa: E402
from requests_oauthlib import OAuth2Session  # noqa: E402
from checks import check, expect, summary  # noqa: E402

URL = sys.argv[1].rstrip("/")
TOKEN_URL = URL + "/token"
REVOKE_URL = URL + "/revoke"
ME_URL = URL + "/users/me"
CLIENT_ID = "password-bearer-tests"
JOHNDOE = {
    "username": "johndoe",
    "email": "johndoe@example.com",
    "full_name": "John Doe",
    "disabled": False,
}
TIMEOUT = 10

print(
    f"versions: requests-oauthlib {requests_oauthlib.__version__}, "
    f"oauthlib {oauthlib.__version__}, authlib {authlib.__version__}, "
    f"requests {requests.__version__}, python {sys.version.split()[0]}"
)



def me_with(access_token):
    """GET /users/me with a plain Authorization header: what a resource
    server's other clients would send with this token."""
    return requests.get(
        ME_URL, headers={"Authorization": "Bearer " + access_token}, timeout=TIMEOUT
    )


def expect_me(response):
    expect(response.status_code == 200, response.status_code, response.text)
    expect(response.json() == JOHNDOE, response.text)


def expect_401(response):
    expect(response.status_code == 401, response.status_code, response.text)
    expect(response.json() == {"detail": "Invalid authentication credentials"}, response.text)
    expect(response.headers.get("www-authenticate") == "Bearer", response.headers)


def expect_token(token):
    """A token response as RFC 6749 §5.1 has it, with our refresh token."""
    expect(token["token_type"].lower() == "bearer", token)
    expect(isinstance(token["access_token"], str) and token["access_token"].count(".") == 2, token)
    expect(token["expires_in"] == 1800, token)
    expect(isinstance(token.get("refresh_token"), str) and len(token["refresh_token"]) >= 22, token)
    expect(token.get("expires_at"), token)


def claims(jwt):
    """The payload of a JWT, unverified."""
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Responses:
    """A compliance hook that keeps the raw responses a library parses."""

    def __init__(self):
        self.seen = []

    def __call__(self, response):
        self.seen.append(response)
        return response

    @property
    def last(self):
        return self.seen[-1]


# requests-oauthlib ------------------------------------------------------

def oauthlib_login(scope=("me", "items"), **kwargs):
    """A password login. The scope goes to the LegacyApplicationClient:
    that is where oauthlib takes the password grant's `scope` from (see the
    check "scope given to OAuth2Session only" below)."""
    client = LegacyApplicationClient(client_id=CLIENT_ID, scope=list(scope))
    session = OAuth2Session(client=client, **kwargs)
    token = session.fetch_token(
        TOKEN_URL, username="johndoe", password="secret", timeout=TIMEOUT
    )
    return session, token


@check("requests-oauthlib: password grant, /users/me, refresh, /users/me with the new token")
def _():
    session, token = oauthlib_login()
    expect_token(token)
    expect(claims(token["access_token"]).get("scope") == "me items", "the login sent the scope")
    expect_me(session.get(ME_URL, timeout=TIMEOUT))
    first_access, first_refresh = token["access_token"], token["refresh_token"]
    refreshed = session.refresh_token(TOKEN_URL, timeout=TIMEOUT)
    expect_token(refreshed)
    expect(refreshed["access_token"] != first_access, "a new access token")
    expect(refreshed["refresh_token"] != first_refresh, "a new refresh token")
    expect(session.token["access_token"] == refreshed["access_token"], session.token)
    response = session.get(ME_URL, timeout=TIMEOUT)
    expect(
        response.request.headers["Authorization"] == "Bearer " + refreshed["access_token"],
        "the session sends the new token",
    )
    expect_me(response)


@check("requests-oauthlib: a used refresh token is 400 invalid_grant and revokes the session")
def _():
    session, token = oauthlib_login()
    used = token["refresh_token"]
    responses = Responses()
    session.register_compliance_hook("refresh_token_response", responses)
    # Two rotations: the token just before the current one is answered once
    # within the retry window (a client whose answer was lost), so the
    # theft presents one older than that.
    session.refresh_token(TOKEN_URL, timeout=TIMEOUT)
    newest = session.refresh_token(TOKEN_URL, timeout=TIMEOUT)
    expect_me(session.get(ME_URL, timeout=TIMEOUT))
    try:
        session.refresh_token(TOKEN_URL, refresh_token=used, timeout=TIMEOUT)
    except InvalidGrantError:
        pass
    else:
        raise AssertionError("the used refresh token was accepted again")
    raw = responses.last
    expect(raw.status_code == 400, raw.status_code, raw.text)
    expect(raw.json()["error"] == "invalid_grant", raw.text)
    expect(raw.headers.get("cache-control") == "no-store", raw.headers)
    # The library keeps the newest token; the server revoked its session.
    expect(session.token["access_token"] == newest["access_token"], session.token)
    expect_401(session.get(ME_URL, timeout=TIMEOUT))
    # And the newest refresh token went with it.
    try:
        session.refresh_token(TOKEN_URL, refresh_token=newest["refresh_token"], timeout=TIMEOUT)
    except InvalidGrantError:
        pass
    else:
        raise AssertionError("the revoked session's newest refresh token still works")
    expect(responses.last.status_code == 400, responses.last.text)


@check("requests-oauthlib: auto_refresh_url + token_updater refresh an expired token")
def _():
    updates = []
    session, token = oauthlib_login(
        scope=["me"], auto_refresh_url=TOKEN_URL, token_updater=updates.append
    )
    expect(claims(token["access_token"]).get("scope") == "me", token)
    # The client's clock says the token has expired (oauthlib raises
    # TokenExpiredError before sending it): the session refreshes, calls
    # the updater, and sends the request with the new token.
    session.token = dict(token, expires_at=time.time() - 1)
    response = session.get(ME_URL, timeout=TIMEOUT)
    expect_me(response)
    expect(len(updates) == 1, updates)
    expect(updates[0]["refresh_token"] != token["refresh_token"], "rotated")
    expect(
        response.request.headers["Authorization"] == "Bearer " + updates[0]["access_token"],
        "sent with the refreshed token",
    )


@check("requests-oauthlib: scope narrowed on refresh; a wider one is 400 invalid_scope")
def _():
    session, token = oauthlib_login()
    session.scope = ["me"]
    narrowed = session.refresh_token(TOKEN_URL, timeout=TIMEOUT)
    expect(narrowed.scopes == ["me"], narrowed)
    expect_me(session.get(ME_URL, timeout=TIMEOUT))
    # The session's grant is still "me items": widening back is allowed,
    # beyond it is not (RFC 6749 §6).
    session.scope = ["me", "items"]
    session.refresh_token(TOKEN_URL, timeout=TIMEOUT)
    session.scope = ["me", "items", "admin"]
    try:
        session.refresh_token(TOKEN_URL, timeout=TIMEOUT)
    except oauthlib.oauth2.InvalidScopeError:
        pass
    else:
        raise AssertionError("a scope beyond the grant was accepted")


@check("requests-oauthlib: a login granted less than asked is told so in `scope` (RFC 6749 §3.3)")
def _():
    # johndoe has "me" and "items", not "admin": the server grants less and
    # says which; oauthlib reports that as a Warning carrying the token
    # (OAUTHLIB_RELAX_TOKEN_SCOPE turns it into a signal).
    try:
        oauthlib_login(scope=["me", "admin"])
    except Warning as warning:
        expect(warning.new_scope == ["me"], warning.new_scope)
        expect_me(me_with(warning.token["access_token"]))
    else:
        raise AssertionError("oauthlib saw no scope change")


@check("requests-oauthlib: scope given to OAuth2Session only: a refresh never widens the grant")
def _():
    # requests-oauthlib's fetch_token does not send OAuth2Session(scope=...)
    # with the password grant, but refresh_token does (a known library bug:
    # requests/requests-oauthlib#285, PRs #283 and #556 unmerged). So the
    # login asks for nothing and is granted nothing (the server's default,
    # RFC 6749 §3.3), and the refresh asks for more than was granted, which
    # RFC 6749 §6 forbids: 400 invalid_scope (§5.2). Should a release send
    # the scope at login, the refresh must simply work.
    logins, refreshes = Responses(), Responses()
    session = OAuth2Session(
        client=LegacyApplicationClient(client_id=CLIENT_ID), scope=["me", "items"]
    )
    session.register_compliance_hook("access_token_response", logins)
    session.register_compliance_hook("refresh_token_response", refreshes)
    token = session.fetch_token(TOKEN_URL, username="johndoe", password="secret", timeout=TIMEOUT)
    sent = dict(urllib.parse.parse_qsl(logins.last.request.body))
    granted = claims(token["access_token"]).get("scope")
    if "scope" in sent:
        expect(granted == "me items", granted)
        session.refresh_token(TOKEN_URL, timeout=TIMEOUT)
        expect_me(session.get(ME_URL, timeout=TIMEOUT))
        return "this release sends the scope at login"
    expect(granted is None, granted)
    try:
        session.refresh_token(TOKEN_URL, timeout=TIMEOUT)
    except oauthlib.oauth2.InvalidScopeError:
        pass
    else:
        raise AssertionError("a refresh widened an empty grant")
    sent = dict(urllib.parse.parse_qsl(refreshes.last.request.body))
    expect(sent.get("scope") == "me items", sent)
    expect(refreshes.last.status_code == 400, refreshes.last.status_code)
    # Nothing was used up or revoked: the same refresh token, without the
    # scope, refreshes.
    expect_me(session.get(ME_URL, timeout=TIMEOUT))
    session.scope = None
    session.refresh_token(TOKEN_URL, timeout=TIMEOUT)
    expect_me(session.get(ME_URL, timeout=TIMEOUT))
    return "login sent no scope, refresh sent scope=me+items: invalid_scope, as RFC 6749 §6 requires"


# authlib ----------------------------------------------------------------

def authlib_login(scope="me items", **kwargs):
    session = AuthlibSession(
        client_id=CLIENT_ID, scope=scope, token_endpoint=TOKEN_URL, default_timeout=TIMEOUT, **kwargs
    )
    token = session.fetch_token(TOKEN_URL, username="johndoe", password="secret")
    return session, token


def expect_revoked_ok(response):
    """RFC 7009 §2.2: 200, and our empty body and no-store."""
    expect(response.status_code == 200, response.status_code, response.text)
    expect(response.content == b"", response.content)
    expect(response.headers.get("cache-control") == "no-store", response.headers)


@check("authlib: password grant, /users/me, refresh, /users/me with the new token")
def _():
    updates = []
    session, token = authlib_login(update_token=lambda t, **kw: updates.append((t, kw)))
    expect_token(token)
    expect(session.metadata.get("grant_type") == "password", session.metadata)
    expect_me(session.get(ME_URL))
    first_access, first_refresh = token["access_token"], token["refresh_token"]
    refreshed = session.refresh_token(TOKEN_URL)
    expect_token(refreshed)
    expect(refreshed["access_token"] != first_access, "a new access token")
    expect(refreshed["refresh_token"] != first_refresh, "a new refresh token")
    expect(len(updates) == 1 and updates[0][1] == {"refresh_token": first_refresh}, updates)
    response = session.get(ME_URL)
    expect(
        response.request.headers["Authorization"] == "Bearer " + refreshed["access_token"],
        "the session sends the new token",
    )
    expect_me(response)


@check("authlib: a used refresh token is 400 invalid_grant and revokes the session")
def _():
    session, token = authlib_login()
    used = token["refresh_token"]
    responses = Responses()
    session.register_compliance_hook("refresh_token_response", responses)
    # Two rotations: the token just before the current one is answered once
    # within the retry window, so the theft presents one older than that.
    session.refresh_token(TOKEN_URL)
    newest = session.refresh_token(TOKEN_URL)
    expect_me(session.get(ME_URL))
    try:
        session.refresh_token(TOKEN_URL, refresh_token=used)
    except OAuthError as error:
        expect(error.error == "invalid_grant", error.error, error.description)
    else:
        raise AssertionError("the used refresh token was accepted again")
    expect(responses.last.status_code == 400, responses.last.status_code, responses.last.text)
    expect(session.token["access_token"] == newest["access_token"], session.token)
    expect_401(session.get(ME_URL))


@check("authlib: revoke_token(refresh token) ends its session's access token at once")
def _():
    session, token = authlib_login()
    expect_me(session.get(ME_URL))  # now in the server's verified-token cache
    expect_revoked_ok(
        session.revoke_token(REVOKE_URL, token=token["refresh_token"], token_type_hint="refresh_token")
    )
    expect_401(session.get(ME_URL))
    try:
        session.refresh_token(TOKEN_URL)
    except OAuthError as error:
        expect(error.error == "invalid_grant", error.error)
    else:
        raise AssertionError("a revoked refresh token was accepted")
    # Revoking it again is still 200 (RFC 7009 §2.2).
    expect_revoked_ok(
        session.revoke_token(REVOKE_URL, token=token["refresh_token"], token_type_hint="refresh_token")
    )


@check("authlib: revoke_token(access token) ends that token; the session refreshes on")
def _():
    session, token = authlib_login()
    expect_me(session.get(ME_URL))
    expect_revoked_ok(
        session.revoke_token(REVOKE_URL, token=token["access_token"], token_type_hint="access_token")
    )
    expect_401(session.get(ME_URL))
    refreshed = session.refresh_token(TOKEN_URL)
    expect_me(session.get(ME_URL))
    expect(refreshed["access_token"] != token["access_token"], refreshed)


@check("authlib: revoke_token with a wrong hint or none still revokes (RFC 7009 §2.1)")
def _():
    session, token = authlib_login()
    expect_revoked_ok(
        session.revoke_token(REVOKE_URL, token=token["access_token"], token_type_hint="refresh_token")
    )
    expect_401(session.get(ME_URL))
    session, token = authlib_login()
    expect_revoked_ok(session.revoke_token(REVOKE_URL, token=token["refresh_token"]))
    expect_401(session.get(ME_URL))
    # An unknown token: 200 too, nothing to learn from the answer.
    expect_revoked_ok(session.revoke_token(REVOKE_URL, token="not-a-token", token_type_hint="access_token"))


@check("authlib: an expired token is refreshed before the request (ensure_active_token)")
def _():
    updates = []
    session, token = authlib_login(update_token=lambda t, **kw: updates.append((dict(t), kw)))
    # The client's clock says the token has expired: authlib refreshes at
    # the token endpoint, calls update_token, then sends the request.
    session.token = dict(token, expires_at=int(time.time()) - 1)
    response = session.get(ME_URL)
    expect_me(response)
    expect(len(updates) == 1, updates)
    new, kwargs = updates[0]
    expect(kwargs == {"refresh_token": token["refresh_token"]}, kwargs)
    expect(new["refresh_token"] != token["refresh_token"], "rotated")
    expect(
        response.request.headers["Authorization"] == "Bearer " + new["access_token"],
        "sent with the refreshed token",
    )


@check("authlib: refresh with a narrower scope gets a token for it; a wider one is invalid_scope")
def _():
    session, token = authlib_login()
    narrowed = session.refresh_token(TOKEN_URL, scope="me")
    expect(narrowed.get("scope") in (None, "me"), narrowed)
    claims_scope = claims(narrowed["access_token"]).get("scope")
    expect(claims_scope == "me", claims_scope)
    try:
        session.refresh_token(TOKEN_URL, scope="me admin")
    except OAuthError as error:
        expect(error.error == "invalid_scope", error.error)
    else:
        raise AssertionError("a scope beyond the grant was accepted")


@check("authlib: a login granted less than asked, then refresh: never a wider grant")
def _():
    # authlib re-sends the scope the session asked for at login (its
    # `scope`) with every refresh, not the one the token response said was
    # granted; RFC 6749 §6 forbids asking beyond the grant: 400
    # invalid_scope, and the refresh token is not used up by it. Given the
    # granted scope, the same session refreshes.
    refreshes = Responses()
    session, token = authlib_login(scope="me admin")
    session.register_compliance_hook("refresh_token_response", refreshes)
    expect(token.get("scope") == "me", token)
    note = "authlib sent no scope beyond the grant"
    try:
        refreshed = session.refresh_token(TOKEN_URL)
    except OAuthError as error:
        expect(error.error == "invalid_scope", error.error)
        expect(refreshes.last.status_code == 400, refreshes.last.status_code)
        sent = dict(urllib.parse.parse_qsl(refreshes.last.request.body))
        expect(sent.get("scope") == "me admin", sent)
        note = "it re-sent scope=me+admin: invalid_scope; with session.scope = the granted scope it refreshes"
        session.scope = token["scope"]
        refreshed = session.refresh_token(TOKEN_URL)
    expect(claims(refreshed["access_token"]).get("scope") == "me", refreshed)
    expect_me(session.get(ME_URL))
    return note


sys.exit(summary("oauth clients"))
