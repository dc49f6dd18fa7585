"""SMTP security: STARTTLS and implicit TLS verified against a configured CA, login from
environment variables, and credentials that never show up in logs, errors or tables."""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import ssl
import threading
from pathlib import Path

import pytest
from test_delivery_servers import (
    NOW,
    Credentials,
    SmtpRecorder,
    TlsFiles,
    add_actions,
    deliveries,
    email_row,
    make_config,
    make_tls_files,
    smtp_server,
    statuses,
    warehouse,
)

from cswf.delivery import DeliveryConfig, SmtpSender, default_senders, deliver

USER, PASSWORD = "cswf-mailer", "pa55-W0rd-that-must-not-leak"
ENV = {"CSWF_TEST_SMTP_USER": USER, "CSWF_TEST_SMTP_PASSWORD": PASSWORD}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def tls_config(tmp_path: Path, port: int, tls: TlsFiles | None) -> DeliveryConfig:
    smtp = {"security": "starttls", "user_env": "CSWF_TEST_SMTP_USER",
            "password_env": "CSWF_TEST_SMTP_PASSWORD"}
    if tls is not None:
        smtp["ca_file"] = str(tls.ca_file)
    return make_config(tmp_path, smtp_port=port, smtp=smtp)


def test_starttls_with_login_delivers(tmp_path: Path, tls: TlsFiles,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    recorder = SmtpRecorder()
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test"), email_row(1, "bob@customer.test")])
    with smtp_server(recorder, tls=tls.server_context(),
                     credentials=Credentials(USER, PASSWORD)) as port:
        config = tls_config(tmp_path, port, tls)
        report = deliver(con, default_senders(config), config, NOW)
    assert report.outcomes == {"sent": 2}
    assert [m.rcpt_tos for m in recorder.messages] == [["ann@customer.test"],
                                                       ["bob@customer.test"]]


def test_implicit_tls_delivers(tmp_path: Path, tls: TlsFiles) -> None:
    recorder = SmtpRecorder()
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test")])
    with smtp_server(recorder, tls=tls.server_context(), implicit=True) as port:
        config = make_config(tmp_path, smtp_port=port,
                             smtp={"security": "tls", "ca_file": str(tls.ca_file)})
        report = deliver(con, default_senders(config), config, NOW)
    assert report.outcomes == {"sent": 1} and len(recorder.messages) == 1


def test_a_certificate_the_client_does_not_trust_is_refused(tmp_path: Path, tls: TlsFiles) -> None:
    recorder = SmtpRecorder()
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test")])
    with smtp_server(recorder, tls=tls.server_context()) as port:
        # No ca_file: the system's CA store does not know our throwaway CA.
        config = make_config(tmp_path, smtp_port=port, smtp={"security": "starttls"})
        report = deliver(con, default_senders(config), config, NOW)
    assert report.outcomes == {"retrying": 1} and recorder.messages == []
    assert "CERTIFICATE_VERIFY_FAILED" in deliveries(con)["onboarding/acc-1/1/s0.a0"]["last_error"]


def test_starttls_is_never_skipped_when_the_server_does_not_offer_it(tmp_path: Path) -> None:
    recorder = SmtpRecorder()
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test")])
    with smtp_server(recorder) as port:  # plain server: no STARTTLS
        config = make_config(tmp_path, smtp_port=port, smtp={"security": "starttls"})
        deliver(con, default_senders(config), config, NOW)
    assert recorder.messages == []
    assert "STARTTLS" in deliveries(con)["onboarding/acc-1/1/s0.a0"]["last_error"]


def test_credentials_never_appear_in_logs_errors_or_tables(
    tmp_path: Path, tls: TlsFiles, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CSWF_TEST_SMTP_USER", USER)
    monkeypatch.setenv("CSWF_TEST_SMTP_PASSWORD", PASSWORD + "-wrong")
    caplog.set_level(logging.DEBUG)
    recorder = SmtpRecorder()
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test")])
    with smtp_server(recorder, tls=tls.server_context(),
                     credentials=Credentials(USER, PASSWORD)) as port:
        config = tls_config(tmp_path, port, tls)
        senders = default_senders(config)
        report = deliver(con, senders, config, NOW)
    assert report.outcomes == {"retrying": 1} and recorder.messages == []
    error = deliveries(con)["onboarding/acc-1/1/s0.a0"]["last_error"]
    assert "refused the login (535)" in error and "$CSWF_TEST_SMTP_PASSWORD" in error
    ours = "\n".join(r.getMessage() for r in caplog.records
                     if r.name.startswith("cswf"))
    out = capsys.readouterr()
    stored = str(con.execute("SELECT * FROM deliveries").fetchall())
    stored += str(con.execute("SELECT * FROM action_events").fetchall())
    for text in (error, ours, out.out, out.err, stored, report.summary(), str(report.errors),
                 repr(senders), repr(config)):
        assert PASSWORD not in text and USER not in text


def test_a_missing_credential_variable_is_named_not_guessed(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.delenv("CSWF_TEST_SMTP_USER", raising=False)
    monkeypatch.delenv("CSWF_TEST_SMTP_PASSWORD", raising=False)
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test"), email_row(1, "bob@customer.test")])
    config = tls_config(tmp_path, 9, None)
    report = deliver(con, default_senders(config), config, NOW)
    assert report.outcomes == {"retrying": 1} and report.waiting == 1
    assert "CSWF_TEST_SMTP_USER, CSWF_TEST_SMTP_PASSWORD is not set" in report.errors[0]
    assert statuses(con)["onboarding/acc-1/1/s0.a1"] == "pending"


def test_scrub_hides_every_form_of_the_secret(tmp_path: Path) -> None:
    config = tls_config(tmp_path, 9, None)
    sender = SmtpSender(config, environ=ENV)
    sender._credentials()
    encoded = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    assert sender.scrub(f"535 echo {encoded} {PASSWORD} {USER}") == "535 echo *** *** ***"


# -- scenario 20: no credentials over a connection that is not verified TLS ---------------------


class Listener:
    """A bare SMTP server that logs every line the client sends: it offers AUTH PLAIN LOGIN in
    the clear and, with `tls`, STARTTLS with a certificate the client must not trust."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.tls, self.lines = tls, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(10)
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError, ssl.SSLError):
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        channel = conn.makefile("rwb")
        channel.write(b"220 listener ESMTP\r\n")
        channel.flush()
        for raw in channel:
            line = raw.decode(errors="replace").rstrip("\r\n")
            self.lines.append(line)
            verb = line.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                offers = ["250-listener", "250-AUTH PLAIN LOGIN"]
                if self.tls is not None:
                    offers.append("250-STARTTLS")
                channel.write(("\r\n".join([*offers, "250 8BITMIME"]) + "\r\n").encode())
            elif verb == "STARTTLS" and self.tls is not None:
                channel.write(b"220 go ahead\r\n")
                channel.flush()
                wrapped = self.tls.wrap_socket(conn, server_side=True)
                self.lines.append("(TLS established)")
                self._session_after_tls(wrapped)
                return
            elif verb == "QUIT":
                channel.write(b"221 bye\r\n")
                channel.flush()
                return
            else:
                channel.write(b"250 ok\r\n")
            channel.flush()

    def _session_after_tls(self, conn: ssl.SSLSocket) -> None:
        for raw in conn.makefile("rb"):
            self.lines.append(raw.decode(errors="replace").rstrip("\r\n"))

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("offer_starttls", [False, True])
def test_auth_is_never_sent_without_starttls_or_to_a_self_signed_certificate(
        tmp_path: Path, tls: TlsFiles, monkeypatch: pytest.MonkeyPatch,
        offer_starttls: bool) -> None:
    """The server offers AUTH in the clear; with STARTTLS offered, its certificate is signed by
    a CA the client does not trust. Either way no AUTH line (nor the credentials) reaches it,
    no message is sent, and the email waits for a retry rather than being lost."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    listener = Listener(tls.server_context() if offer_starttls else None)
    con = warehouse()
    add_actions(con, [email_row(0, "ann@customer.test")])
    try:
        config = tls_config(tmp_path, listener.port, None)  # no ca_file: the system's CAs
        report = deliver(con, default_senders(config), config, NOW)
    finally:
        listener.close()
    said = "\n".join(listener.lines)
    assert listener.lines and listener.lines[0].upper().startswith("EHLO")
    assert not any(line.upper().startswith("AUTH") for line in listener.lines), said
    assert ("STARTTLS" in [line.upper() for line in listener.lines]) == offer_starttls
    assert "(TLS established)" not in listener.lines
    encoded = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    for secret in (USER, PASSWORD, encoded, base64.b64encode(USER.encode()).decode()):
        assert secret not in said
    assert not any(line.upper().startswith(("MAIL", "RCPT", "DATA")) for line in listener.lines)
    assert report.outcomes == {"retrying": 1}
    assert statuses(con) == {"onboarding/acc-1/1/s0.a0": "failed"}
