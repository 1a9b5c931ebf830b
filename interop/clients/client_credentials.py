"""The client credentials grant and introspection with the OAuth2 client
libraries, used as their documentation tells users to: authlib's
OAuth2Session(client_id, client_secret).fetch_token(url,
grant_type="client_credentials") with both token_endpoint_auth_method
client_secret_basic and client_secret_post, and requests-oauthlib's
BackendApplicationClient with OAuth2Session.fetch_token(token_url,
client_id=..., client_secret=...). Each token is checked at /introspect
by another client, refused at /users/me, and revoked by its own client.

    python3 interop/clients/client_credentials.py http://127.0.0.1:PORT \
        SERVICE_SECRET INTROSPECTOR_SECRET

The server serves a clients file with "service" (scopes items and me, no
introspection) and "introspector" (no scope, may introspect). Prints one
line per check, "ok      NAME" or "FAILED  NAME: why", as run.sh counts
them. Exits non-zero if any check failed.
"""

import base64
import json
import os
import sys

os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

import requests  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession  # noqa: E402
from oauthlib.oauth2 import BackendApplicationClient  # noqa: E402
from requests_oauthlib import OAuth2Session  # noqa: E402
from checks import check, expect, summary  # noqa: E402

URL = sys.argv[1].rstrip("/")
SERVICE = ("service", sys.argv[2])
INTROSPECTOR = ("introspector", sys.argv[3])
TOKEN_URL = URL + "/token"
TIMEOUT = 10



def claims(jwt):
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def introspect(token, client=INTROSPECTOR):
    response = requests.post(URL + "/introspect", data={"token": token}, auth=client, timeout=TIMEOUT)
    expect(response.status_code == 200, response.status_code, response.text)
    expect(response.headers.get("cache-control") == "no-store", response.headers)
    return response.json()


def expect_service_token(token, scope):
    """A client credentials token for "service", good at /introspect,
    refused at /users/me, then revoked by its own client."""
    expect(token["token_type"].lower() == "bearer", token)
    expect("refresh_token" not in token, token)
    access = token["access_token"]
    expect(claims(access)["sub"] == "service" and claims(access)["client_id"] == "service", claims(access))
    answer = introspect(access)
    expect(answer.get("active") is True, answer)
    expect(answer["client_id"] == "service" and answer["sub"] == "service", answer)
    expect(answer.get("scope") == scope, answer)
    me = requests.get(URL + "/users/me", headers={"Authorization": "Bearer " + access}, timeout=TIMEOUT)
    expect(me.status_code == 401, me.status_code, me.text)
    revoked = requests.post(URL + "/revoke", data={"token": access}, auth=SERVICE, timeout=TIMEOUT)
    expect(revoked.status_code == 200, revoked.status_code, revoked.text)
    expect(introspect(access) == {"active": False}, "revoked")


for method in ["client_secret_basic", "client_secret_post"]:

    @check(f"authlib fetch_token(grant_type=client_credentials), {method}")
    def _():
        session = AuthlibSession(SERVICE[0], SERVICE[1], token_endpoint_auth_method=method, scope="items")
        token = session.fetch_token(TOKEN_URL, grant_type="client_credentials")
        expect_service_token(token, "items")


@check("requests-oauthlib BackendApplicationClient fetch_token(client_id, client_secret)")
def _():
    session = OAuth2Session(client=BackendApplicationClient(client_id=SERVICE[0]))
    token = session.fetch_token(token_url=TOKEN_URL, client_id=SERVICE[0], client_secret=SERVICE[1])
    # None asked: all of the client's scopes.
    expect_service_token(token, "items me")


@check("authlib with a wrong secret gets invalid_client")
def _():
    session = AuthlibSession(SERVICE[0], "x" * 43, token_endpoint_auth_method="client_secret_basic")
    try:
        session.fetch_token(TOKEN_URL, grant_type="client_credentials")
    except Exception as error:  # noqa: BLE001 - authlib's OAuthError
        expect(getattr(error, "error", None) == "invalid_client", error)
    else:
        raise AssertionError("a wrong secret got a token")


@check("a client not allowed to introspect is 403 unauthorized_client")
def _():
    response = requests.post(URL + "/introspect", data={"token": "x"}, auth=SERVICE, timeout=TIMEOUT)
    expect(response.status_code == 403, response.status_code, response.text)
    expect(response.json()["error"] == "unauthorized_client", response.text)


sys.exit(summary("client credentials"))
