#!/usr/bin/env python3
"""Records the exact bytes real clients send for a multipart login to
POST /token, as the fixtures that tests/multipart.rs replays.

    python3 interop/clients/capture.py        # rewrites tests/fixtures/clients/

Needs curl, and Python's requests and httpx. A throwaway listener on
127.0.0.1 reads each request (head, then Content-Length bytes of body),
answers a canned token so the client is content, and writes the request
to FIXTURES/NAME.http byte for byte. Not run by cargo test or CI: the
fixtures are committed; rerun it when a client's encoding may have changed.
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading

FIXTURES = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "clients"
)
ANSWER = b'{"access_token":"x","token_type":"bearer"}'


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before the head ended")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding":
            raise RuntimeError("chunked request: add support before recording it")
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before the body ended")
        body += chunk
    return head + b"\r\n\r\n" + body


def record(name, send):
    """Runs send(url) against a one-shot listener; saves what arrived."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    url = "http://127.0.0.1:%d/token" % listener.getsockname()[1]
    captured = {}

    def serve():
        conn, _ = listener.accept()
        with conn:
            captured["request"] = read_request(conn)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(ANSWER), ANSWER)
            )

    thread = threading.Thread(target=serve)
    thread.start()
    send(url)
    thread.join(10)
    listener.close()
    path = os.path.join(FIXTURES, name + ".http")
    with open(path, "wb") as f:
        f.write(captured["request"])
    print("%-28s %5d bytes" % (name, len(captured["request"])))


def curl(*args):
    return lambda url: subprocess.run(["curl", "-sS", "-o", os.devnull, *args, url], check=True)


def main():
    import httpx
    import requests

    os.makedirs(FIXTURES, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        johndoe = os.path.join(tmp, "johndoe.txt")
        with open(johndoe, "wb") as f:
            f.write(b"johndoe")
        # `curl -F` as README.md's walkthrough shows it, and with a file where a field goes.
        record("curl_login", curl("-F", "username=johndoe", "-F", "password=secret"))
        record("curl_username_file", curl("-F", "username=@" + johndoe, "-F", "password=secret"))
    fields = {"username": (None, "johndoe"), "password": (None, "secret")}
    form = {"grant_type": "password", "username": "johndoe", "password": "secret", "scope": "me items"}
    avatar = {"avatar": ("avatar.png", b"\x89PNG\r\n\x1a\n\r\n--not-a-boundary\r\n", "image/png")}
    # requests and httpx send multipart only with files=: fields as files
    # without a filename, or a form beside a real file (for a field we ignore).
    record("requests_files", lambda url: requests.post(url, files=fields, timeout=10))
    record("requests_data_and_file", lambda url: requests.post(url, data=form, files=avatar, timeout=10))
    record("httpx_files", lambda url: httpx.post(url, files=fields, timeout=10))
    record("httpx_data_and_file", lambda url: httpx.post(url, data=form, files=avatar, timeout=10))


if __name__ == "__main__":
    sys.exit(main())
