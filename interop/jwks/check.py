#!/usr/bin/env python3
"""PyJWT's side of interop/jwks/run.sh: what a Python service sees.

    check.py jwks URL PEM...                  the JWKS lists exactly these keys
    check.py metadata URL ISSUER              RFC 8414 metadata
    check.py verify ISSUER AUDIENCE ALG TOKEN PyJWKClient verifies TOKEN
    check.py reject ISSUER AUDIENCE TOKEN     PyJWKClient finds no key for it

`verify` and `reject` take the JWKS's address from the metadata at
ISSUER/.well-known/oauth-authorization-server, as a service configured
with only the issuer would, and each run is a new PyJWKClient: it fetches
the set anew. Prints one line per check; exits 1 on the first that fails.
The key ids are computed here from the PEM files (RFC 7638), not read from
the server, so a wrong thumbprint is caught.
"""

import base64
import hashlib
import json
import re
import sys
import urllib.request

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(pem_path):
    """The public JWK of a PKCS#8 private key file: its required members only."""
    with open(pem_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {"crv": "Ed25519", "kty": "OKP", "x": b64(raw)}, "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        numbers = key.public_key().public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        }, "ES256"
    raise SystemExit(f"check.py: {pem_path}: not an Ed25519 or P-256 key")


def thumbprint(jwk):
    """RFC 7638: SHA-256 of the required members, sorted, no white space."""
    canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":"))
    return b64(hashlib.sha256(canonical.encode()).digest())


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers, json.load(response)


def ok(what):
    print(f"ok   {what}")


def fail(what):
    print(f"FAIL {what}")
    sys.exit(1)


def check_jwks(url, pems):
    status, headers, body = get(url + "/.well-known/jwks.json")
    cache = headers.get("Cache-Control", "")
    match = re.fullmatch(r"public, max-age=(\d+)", cache)
    if status != 200 or not match:
        fail(f"JWKS: {status}, Cache-Control {cache!r}")
    ok(f"JWKS: 200, Cache-Control: {cache}")
    want = []
    for pem in pems:
        jwk, alg = public_jwk(pem)
        want.append(dict(jwk, kid=thumbprint(jwk), alg=alg, use="sig"))
    # Every member compared: the kid is the thumbprint computed here, and a
    # private member ("d") or any other extra fails.
    got = sorted(body.get("keys", []), key=lambda k: k.get("kid", ""))
    if got != sorted(want, key=lambda k: k["kid"]) or set(body) != {"keys"}:
        fail(f"JWKS: got {json.dumps(body)}, want the keys {json.dumps(want)}")
    ok(f"JWKS: exactly the {len(want)} key(s) given, kid = RFC 7638 thumbprint, no private member")


def check_metadata(url, issuer):
    status, _, body = get(url + "/.well-known/oauth-authorization-server")
    if status != 200 or body.get("issuer") != issuer:
        fail(f"metadata: {status}, issuer {body.get('issuer')!r}, want {issuer!r}")
    ok("metadata: issuer is exactly --issuer")
    for member, want in [
        ("jwks_uri", issuer + "/.well-known/jwks.json"),
        ("token_endpoint", issuer + "/token"),
    ]:
        if body.get(member) != want:
            fail(f"metadata: {member} {body.get(member)!r}, want {want!r}")
    if "password" not in body.get("grant_types_supported", []):
        fail(f"metadata: grant_types_supported {body.get('grant_types_supported')!r}")
    for member in ["token_endpoint_auth_methods_supported", "scopes_supported"]:
        if not isinstance(body.get(member), list):
            fail(f"metadata: no {member} list in {json.dumps(body)}")
    ok("metadata: jwks_uri, token_endpoint, grant_types_supported, auth methods, scopes")


def client_for(issuer):
    """A new PyJWKClient at the metadata's jwks_uri: a service started now."""
    _, _, metadata = get(issuer + "/.well-known/oauth-authorization-server")
    return jwt.PyJWKClient(metadata["jwks_uri"])


def decode(issuer, audience, token, key):
    return jwt.decode(
        token,
        key,
        algorithms=["EdDSA", "ES256"],
        issuer=issuer,
        audience=audience,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )


def verify(issuer, audience, alg, token):
    header = jwt.get_unverified_header(token)
    if header.get("alg") != alg or header.get("typ") != "at+jwt":
        fail(f"PyJWT: header {header}, want alg {alg}, typ at+jwt")
    key = client_for(issuer).get_signing_key_from_jwt(token)
    claims = decode(issuer, audience, token, key)
    if claims["sub"] != "johndoe" or not claims.get("client_id"):
        fail(f"PyJWT: claims {claims}")
    ok(f"PyJWT PyJWKClient verifies the {alg} token (iss, aud, exp, RFC 9068 claims)")
    # The same key with another audience or issuer: refused, so the checks
    # above are real.
    for name, args in [("audience", (issuer, "another-api")), ("issuer", ("https://other.test", audience))]:
        try:
            decode(*args, token, key)
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            continue
        fail(f"PyJWT accepted the {alg} token for another {name}")
    ok(f"PyJWT refuses the {alg} token for another audience or issuer")


def reject(issuer, audience, token):
    try:
        key = client_for(issuer).get_signing_key_from_jwt(token)
    except jwt.PyJWKClientError as e:
        ok(f"PyJWT PyJWKClient refuses the old token: {e}")
        return
    fail(f"PyJWT found a key for the old token: {decode(issuer, audience, token, key)}")


def main(argv):
    command, args = argv[1], argv[2:]
    if command == "jwks":
        check_jwks(args[0], args[1:])
    elif command == "metadata":
        check_metadata(*args)
    elif command == "verify":
        verify(*args)
    elif command == "reject":
        reject(*args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
