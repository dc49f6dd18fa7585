"""SMTP security: STARTTLS and implicit TLS verified against a configured CA, login from
environment variables, and credentials that never show up in logs, errors or tables."""

from __future__ import annotations

import base64
import logging
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
