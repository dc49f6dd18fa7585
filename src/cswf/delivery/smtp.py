"""Email over SMTP: STARTTLS or implicit TLS, verified; plain only for a local test server.

Credentials are read from the environment variables named in the config when the connection
opens. They are never logged, never kept in an error (server replies are scrubbed of them too),
and a refused login reports only its status code.

The SMTP transaction is done step by step so that a failure can be classified: anything before
the message was transmitted is safe to retry; a connection lost after transmitting it is
ambiguous (the server may have accepted it), so the result is `unknown`, never a silent resend.
An email to several contacts is one message, one RCPT per address: it goes to the addresses the
server took unless one of them was deferred (4xx), in which case it is all tried again later.
"""

from __future__ import annotations

import base64
import contextlib
import email.policy
import os
import smtplib
import ssl
from collections.abc import Mapping
from datetime import datetime

from cswf.delivery.config import DeliveryConfig
from cswf.delivery.email import (
    InvalidEmail,
    address_of,
    compose_email,
    recipient_addresses,
    sender_headers,
)
from cswf.delivery.model import OutboundAction, SendResult


class _SenderDown(Exception):
    """The server cannot be used at all right now (connection, TLS, login, configuration)."""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _reply(code: int, text: bytes | str) -> str:
    raw = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(raw.split())}"


class SmtpSender:
    channel = "smtp"

    def __init__(self, config: DeliveryConfig, *, environ: Mapping[str, str] | None = None
                 ) -> None:
        self._config = config
        self._smtp = config.smtp
        self._environ = os.environ if environ is None else environ
        self._connection: smtplib.SMTP | None = None
        self._secrets: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"SmtpSender({self._smtp.host}:{self._smtp.port}, {self._smtp.security})"

    # -- connection --------------------------------------------------------------------------

    def _credentials(self) -> tuple[str, str] | None:
        names = (self._smtp.user_env, self._smtp.password_env)
        if names[0] is None or names[1] is None:
            return None
        missing = [name for name in names if not self._environ.get(name)]
        if missing:
            raise _SenderDown(f"SMTP credentials: environment variable {', '.join(missing)} "
                              "is not set")
        user, password = self._environ[names[0]], self._environ[names[1]]
        plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self._secrets = tuple(s for s in (password, user, plain,
                                          base64.b64encode(password.encode()).decode()) if s)
        return user, password

    def scrub(self, text: str) -> str:
        """The text with every form of the credentials replaced."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = self._smtp.ca_file
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def _open(self) -> smtplib.SMTP:
        smtp = self._smtp
        credentials = self._credentials()
        where = f"SMTP server {smtp.host}:{smtp.port} ({smtp.security})"
        connection: smtplib.SMTP | None = None
        try:
            if smtp.security == "tls":
                connection = smtplib.SMTP_SSL(smtp.host, smtp.port, local_hostname=smtp.helo_name,
                                              timeout=smtp.timeout_seconds,
                                              context=self._tls_context())
            else:
                connection = smtplib.SMTP(smtp.host, smtp.port, local_hostname=smtp.helo_name,
                                          timeout=smtp.timeout_seconds)
            connection.ehlo()
            if smtp.security == "starttls":
                connection.starttls(context=self._tls_context())
                connection.ehlo()
            if credentials is not None:
                connection.login(*credentials)
        except smtplib.SMTPAuthenticationError as exc:
            _close(connection)
            raise _SenderDown(f"{where} refused the login ({exc.smtp_code}); check the "
                              f"credentials in ${smtp.user_env} / ${smtp.password_env}") from None
        except (OSError, smtplib.SMTPException) as exc:
            _close(connection)
            raise _SenderDown(f"cannot use {where}: {self.scrub(_describe(exc))}") from None
        return connection

    def _session(self) -> smtplib.SMTP:
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _reset(self) -> None:
        """Clear a refused transaction so the connection can carry the next message."""
        if self._connection is None:
            return
        try:
            self._connection.rset()
        except (OSError, smtplib.SMTPException):
            self.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.quit()
            except (OSError, smtplib.SMTPException):
                _close(connection)

    # -- sending -----------------------------------------------------------------------------

    def send(self, action: OutboundAction, now: datetime) -> SendResult:
        try:
            senders = sender_headers(action.payload, self._config, action.participant_id)
            message = compose_email(action.action_id, action.addresses, action.subject,
                                    action.body, bool(action.payload.get("html")),
                                    self._config, now, senders)
            envelope_from = address_of(self._smtp.envelope_from or self._smtp.from_address,
                                       "envelope_from")
            recipients = recipient_addresses(action.addresses)
        except InvalidEmail as exc:
            return SendResult.failed(str(exc), retryable=False)
        data = message.as_bytes(policy=email.policy.SMTP)
        message_id = str(message["Message-ID"])
        try:
            connection = self._session()
            code, text = connection.mail(envelope_from)
            if code != 250:
                self._reset()
                return SendResult.failed(f"sender refused: {self.scrub(_reply(code, text))}",
                                         retryable=True, sender_down=True)
            refused: list[tuple[str, str]] = []  # (address, reply): 5xx
            deferred: list[tuple[str, str]] = []  # 4xx
            for recipient in recipients:
                code, text = connection.rcpt(recipient)
                if code not in (250, 251):
                    reply = self.scrub(_reply(code, text))
                    (refused if 500 <= code < 600 else deferred).append((recipient, reply))
        except _SenderDown as exc:
            return SendResult.failed(str(exc), retryable=True, sender_down=True)
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            return SendResult.failed(f"SMTP error before sending: {self.scrub(_describe(exc))}",
                                     retryable=True, sender_down=True)
        # A 5xx to RCPT is a synchronous bounce: the address is bad. One `bounced` event (events
        # are keyed by action and time) naming the refused addresses, which suppression reads.
        several = len(recipients) > 1
        bounced = (("bounced", _listed(refused, several)),) if refused else ()
        if deferred or len(refused) == len(recipients):
            # Nothing is sent unless every address not refused took it: a 4xx is tried again
            # later, all of it (by then the bounced addresses are suppressed and dropped).
            self._reset()
            if deferred:
                return SendResult.failed(f"recipient deferred: {_listed(deferred, several)}",
                                         retryable=True, events=bounced)
            return SendResult.failed(f"recipient refused: {_listed(refused, several)}",
                                     retryable=False, events=bounced)
        try:
            code, text = connection.data(data)
        except smtplib.SMTPDataError as exc:  # DATA refused before any content went out
            self._reset()
            reply = self.scrub(_reply(exc.smtp_code, exc.smtp_error))
            return SendResult.failed(f"DATA refused: {reply}", retryable=exc.smtp_code < 500,
                                     events=bounced)
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            return SendResult(
                "unknown", provider_id=message_id,
                error=f"connection lost while the message was being accepted "
                      f"({self.scrub(_describe(exc))}); the server may have accepted it: check "
                      f"its log for Message-ID {message_id} before resending",
                events=bounced,
            )
        reply = self.scrub(_reply(code, text))
        if code == 250:
            return SendResult("sent", provider_id=message_id, note=senders.note,
                              events=(("sent", reply), *bounced))
        self._reset()
        if 500 <= code < 600:
            return SendResult.failed(f"message refused: {reply}", retryable=False,
                                     provider_id=message_id,
                                     events=(("dropped", reply), *bounced))
        return SendResult.failed(f"message deferred: {reply}", retryable=True,
                                 provider_id=message_id, events=bounced)


def _listed(replies: list[tuple[str, str]], several: bool) -> str:
    """The server's answers: the reply alone for a single recipient, else per address."""
    if not several:
        return replies[0][1]
    return "; ".join(f"{address}: {reply}" for address, reply in replies)


def _close(connection: smtplib.SMTP | None) -> None:
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.close()
