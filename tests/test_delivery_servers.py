"""Real servers on 127.0.0.1 for the delivery tests, and outbox helpers (no tests here).

- `SmtpServer`: aiosmtpd, plain / STARTTLS / implicit TLS, optional login; records every message
  and can refuse chosen recipients with a 550.
- `WebhookReceiver`: http.server that records requests, applies each Idempotency-Key once, and
  follows a plan per request (answer 500 before or after applying, stall past the timeout).
- `make_tls_files`: a throwaway CA and a server certificate for 127.0.0.1 (cryptography).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cswf.delivery import DeliveryConfig
from cswf.engine.frames import ACTION_SCHEMA, conform
from cswf.store.tables import ensure_engine_tables

HOST = "127.0.0.1"
TICK = datetime(2026, 6, 2, 6, 0)
NOW = datetime(2026, 6, 2, 14, 0)  # 14:00 UTC: outside quiet hours in UTC


# -- the warehouse ------------------------------------------------------------------------------


def warehouse(path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """The engine's tables in a DuckDB file at `path` (a real database file, as in production),
    or in memory when no path is given."""
    con = duckdb.connect(str(path) if path is not None else ":memory:")
    ensure_engine_tables(con)
    return con


def email_row(n: int, recipient: str | None, *, subject: str | None = None,
              body: str | None = "Hello,\nwelcome aboard.", html: bool = False,
              participant: str = "acc-1", workflow: str = "onboarding", step: int = 0,
              tick: datetime = TICK) -> dict[str, Any]:
    return {
        "action_id": f"{workflow}/{participant}/1/s{step}.a{n}", "tick": tick,
        "workflow": workflow, "version": "v1", "enrollment_id": f"{workflow}/{participant}/1",
        "participant_id": participant, "step": step, "step_name": f"step {step}",
        "action_index": n, "action_type": "email", "category": "Onboarding",
        "assignee": "csm@vendor.test", "recipient": recipient,
        "subject": f"Welcome {n}" if subject is None else subject, "body": body,
        "payload": json.dumps({"html": html, "template": None,
                               "to_field": "primary_contact_email"}),
        "status": "pending",
    }


def webhook_row(n: int, *, participant: str = "acc-1", tick: datetime = TICK) -> dict[str, Any]:
    return {
        "action_id": f"alerts/{participant}/1/s0.a{n}", "tick": tick, "workflow": "alerts",
        "version": "v1", "enrollment_id": f"alerts/{participant}/1", "participant_id": participant,
        "step": 0, "step_name": "notify", "action_index": n, "action_type": "webhook",
        "category": "Escalations", "assignee": "group:cs", "subject": f"Health dropped {n}",
        "body": "Health score fell below 60", "payload": json.dumps({"channel": "#cs-alerts"}),
        "status": "pending",
    }


def task_row(n: int, *, participant: str = "acc-1", tick: datetime = TICK) -> dict[str, Any]:
    return {
        "action_id": f"onboarding/{participant}/1/s1.a{n}", "tick": tick,
        "workflow": "onboarding", "version": "v1", "enrollment_id": f"onboarding/{participant}/1",
        "participant_id": participant, "step": 1, "step_name": "kickoff", "action_index": n,
        "action_type": "task", "category": "Onboarding", "assignee": "csm@vendor.test",
        "due_at": tick + timedelta(days=3), "subject": f"Kickoff call {n}",
        "body": "Book the kickoff", "status": "pending",
        "payload": json.dumps({"due_days": 3, "priority": "high",
                               "subtasks": ["agenda", "invite champion"]}),
    }


def field_update_row(n: int, *, participant: str = "acc-1", tick: datetime = TICK
                     ) -> dict[str, Any]:
    return {
        "action_id": f"onboarding/{participant}/1/s2.a{n}", "tick": tick,
        "workflow": "onboarding", "version": "v1", "enrollment_id": f"onboarding/{participant}/1",
        "participant_id": participant, "step": 2, "step_name": "mark", "action_index": n,
        "action_type": "field_update", "category": "Onboarding", "assignee": "csm@vendor.test",
        "subject": "set lifecycle_stage", "body": "onboarding", "status": "pending",
        "payload": json.dumps({"field": "lifecycle_stage", "value": "onboarding"}),
    }


def add_actions(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    new_rows = conform(pl.DataFrame(rows, infer_schema_length=None), ACTION_SCHEMA)  # noqa: F841
    con.execute("INSERT INTO actions_outbox SELECT * FROM new_rows").fetchall()


def deliveries(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    frame = con.sql("SELECT * FROM deliveries ORDER BY action_id").pl()
    return {row["action_id"]: row for row in frame.iter_rows(named=True)}


def statuses(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {k: v["status"] for k, v in deliveries(con).items()}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def make_config(tmp: Path, *, smtp_port: int = 1, webhook_url: str | None = None,
                **over: Any) -> DeliveryConfig:
    base: dict[str, Any] = {
        "dry_run": False,
        "dry_run_dir": str(tmp / "preview"),
        "export_dir": str(tmp / "exports"),
        "quiet_hours": None,
        "cap_per_day": None,
        "retry": {"max_attempts": 3, "backoff_seconds": 60},
        "smtp": {"host": HOST, "port": smtp_port, "security": "none",
                 "from_address": "CS Team <cs@vendor.test>", "helo_name": "cswf.test",
                 "timeout_seconds": 5},
        "webhook": {"url": webhook_url, "timeout_seconds": 1, "max_attempts": 3,
                    "backoff_seconds": 0.01},
        "unsubscribe": {"mailto": "unsubscribe@vendor.test",
                        "url": "https://vendor.test/u?e={recipient}&a={action_id}"},
    }
    return DeliveryConfig.from_mapping(merge(base, over))


# -- SMTP ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        unix = self.data.replace(b"\r\n", b"\n")  # as a mail client stores it
        return message_from_bytes(unix, policy=policy.default)  # type: ignore[return-value]


@dataclass
class SmtpRecorder:
    """aiosmtpd handler: keeps every accepted message; refuses `reject` addresses."""

    messages: list[Received] = field(default_factory=list)
    reject: set[str] = field(default_factory=set)
    drop_after_data: bool = False  # close the connection instead of answering DATA

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.lower() in self.reject:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      bytes(envelope.original_content or envelope.content)))
        if self.drop_after_data:
            server.transport.close()
        return "250 2.0.0 queued"


class Credentials:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == self.user.encode()
              and auth_data.password == self.password.encode())
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 / 535


@contextmanager
def smtp_server(recorder: SmtpRecorder, *, tls: ssl.SSLContext | None = None,
                implicit: bool = False, credentials: Credentials | None = None
                ) -> Iterator[int]:
    """Runs aiosmtpd on 127.0.0.1 for the block; yields its port."""
    port = free_port()
    kwargs: dict[str, Any] = {}
    if tls is not None and implicit:
        kwargs["ssl_context"] = tls
    elif tls is not None:
        kwargs.update(tls_context=tls, require_starttls=True)
    if credentials is not None:
        kwargs.update(authenticator=credentials, auth_required=True)
    controller = Controller(recorder, hostname=HOST, port=port, ready_timeout=5,
                            server_hostname="127.0.0.1", **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_tls_files(folder: Path) -> TlsFiles:
    """A throwaway CA and a certificate for 127.0.0.1 / localhost signed by it."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cswf test CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(HOST)),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return files


# -- webhooks -----------------------------------------------------------------------------------


@dataclass
class WebhookReceiver:
    """What a well-behaved receiver does: apply each Idempotency-Key once. `plan` scripts the
    answers, one entry per request: "ok", "fail_before" (500, nothing applied), "fail_after"
    (applied, then 500), "stall" (applied, then no answer within the client's timeout), or an
    HTTP status to answer without applying."""

    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    applied: dict[str, bytes] = field(default_factory=dict)
    effects: int = 0
    plan: list[str | int] = field(default_factory=list)
    stall_seconds: float = 1.5
    echo: bool = False  # answer with the request headers (as some careless receivers do)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: bytes) -> int | None:
        with self.lock:
            self.requests.append((headers, body))
            step = self.plan.pop(0) if self.plan else "ok"
            if isinstance(step, int):
                return step
            if step == "fail_before":
                return 500
            key = headers.get("Idempotency-Key", "")
            if key not in self.applied:
                self.applied[key] = body
                self.effects += 1
        if step == "stall":
            time.sleep(self.stall_seconds)
            return None
        return 500 if step == "fail_after" else 200

    def keys(self) -> list[str]:
        return [headers.get("Idempotency-Key", "") for headers, _ in self.requests]


@contextmanager
def webhook_server(receiver: WebhookReceiver) -> Iterator[str]:
    """Runs the receiver on 127.0.0.1 for the block; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.handle(dict(self.headers.items()), body)
            if status is None:
                return
            document: dict[str, Any] = {"ok": status < 300}
            if receiver.echo:
                document["request_headers"] = dict(self.headers.items())
            answer = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}/hooks/cswf"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
