"""A real S3-compatible server for tests: moto's (`moto.server.ThreadedMotoServer`, from PyPI)
on 127.0.0.1 and a free port, started once per test session in a thread of the test process;
a fresh bucket per test, and the AWS_* environment pointing at it, never at AWS.

moto's server speaks S3's HTTP API (PUT, GET, LIST, DeleteObjects, the error codes); it checks
no signature, so the credentials the tests set are placeholders. What it is not: AWS itself,
nor MinIO; the tests say nothing about their latency or their limits.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

# Everything obstore reads that could send a request elsewhere than the test server.
OTHER_AWS = ("AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_TOKEN",
             "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_BUCKET", "AWS_BUCKET_NAME",
             "AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "AWS_SKIP_SIGNATURE", "AWS_S3_EXPRESS",
             "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
             "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")
SECRET = "not-a-real-secret-4b1d"  # what AWS_SECRET_ACCESS_KEY is in the tests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(endpoint: str) -> dict[str, str]:
    """The AWS_* settings for `endpoint` (an http:// server on this machine)."""
    return {"AWS_ACCESS_KEY_ID": "cswf-test", "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}


class Server:
    """One running server; `bucket()` makes a fresh bucket and returns its name."""

    def __init__(self, port: int) -> None:
        self.endpoint = f"http://127.0.0.1:{port}"
        self._names = itertools.count(1)

    def bucket(self) -> str:
        name = f"cswf-test-{next(self._names)}"
        client(environment(self.endpoint)).create_bucket(Bucket=name)
        return name


def client(env: Mapping[str, str] = os.environ) -> Any:
    """A boto3 client (boto3 comes with moto) of the server the AWS_* settings in `env` name:
    the tests look into the bucket with it, not with the code under test."""
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                        region_name=env["AWS_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def keys(url: str) -> list[str]:
    """Every key under `url` (s3://bucket/prefix), sorted, on the server the environment
    names."""
    parts = urlsplit(url)
    pages = client().get_paginator("list_objects_v2").paginate(
        Bucket=parts.netloc, Prefix=parts.path.lstrip("/"))
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@contextmanager
def running() -> Iterator[Server]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield Server(port)
    finally:
        server.stop()
