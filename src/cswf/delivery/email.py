"""Build the MIME message for an email action (shared by the SMTP and dry-run senders).

Header values come from rendered templates and data, so they are checked, never trusted: a CR or
LF in the subject or an address would let a template add headers or recipients, so such an
action fails closed with a clear error and is not sent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from html import unescape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

from cswf.delivery.config import DeliveryConfig

_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]")


class InvalidEmail(ValueError):
    """The action cannot become a safe email; it fails without a retry."""


def _no_line_breaks(what: str, value: str) -> str:
    if _LINE_BREAKS.search(value):
        raise InvalidEmail(f"{what} contains a line break (CR/LF): refused to prevent header "
                           "injection")
    return value


def address_of(value: str | None, what: str) -> str:
    """The bare address of `Name <a@b>` or `a@b`; refuses anything that is not one address."""
    _no_line_breaks(what, value or "")
    _name, address = parseaddr(value or "")
    if not address or address.count("@") != 1 or "," in address or " " in address:
        raise InvalidEmail(f"{what} is not a single email address: {value!r}")
    local, domain = address.rsplit("@", 1)
    if not local or not domain:
        raise InvalidEmail(f"{what} is not a single email address: {value!r}")
    return address


def message_id(action_id: str, domain: str) -> str:
    """Deterministic: the same action always gets the same Message-ID (traceable, dedupable)."""
    digest = hashlib.sha256(action_id.encode()).hexdigest()[:32]
    return f"<cswf.{digest}@{domain}>"


def _domain(config: DeliveryConfig) -> str:
    if config.message_id_domain:
        return config.message_id_domain
    return address_of(config.smtp.from_address, "from_address").rsplit("@", 1)[1]


def unsubscribe_headers(config: DeliveryConfig, recipient: str, action_id: str
                        ) -> dict[str, str]:
    """List-Unsubscribe (RFC 2369) and, for an https target, one-click POST (RFC 8058).
    `recipient`: the address, or the addresses comma-separated for an email to several."""
    fill = {"recipient": quote(recipient, safe=""), "action_id": quote(action_id, safe="")}
    targets = []
    if config.unsubscribe.mailto:
        subject = quote(f"unsubscribe {action_id}", safe="")
        targets.append(f"<mailto:{config.unsubscribe.mailto.format(**fill)}?subject={subject}>")
    if config.unsubscribe.url:
        targets.append(f"<{config.unsubscribe.url.format(**fill)}>")
    if not targets:
        return {}
    headers = {"List-Unsubscribe": ", ".join(targets)}
    if config.unsubscribe.url and config.unsubscribe.one_click:
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for value in headers.values():
        _no_line_breaks("List-Unsubscribe", value)
    return headers


class _TextOfHtml(HTMLParser):
    """Readable plain text of an HTML body: blocks become lines, links keep their target."""

    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
                        "table", "ul", "ol", "blockquote", "hr"})
    SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        if tag == "a":
            self.href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(self.skipping - 1, 0)
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "a" and self.href:
            self.parts.append(f" ({self.href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in unescape("".join(parser.parts)).splitlines())
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def recipient_addresses(recipients: str | Sequence[str | None] | None) -> list[str]:
    """The bare addresses of an email's recipients (one, or several resolved contacts); raises
    InvalidEmail naming the first that is not a single address."""
    listed = [recipients] if recipients is None or isinstance(recipients, str) else recipients
    if not listed:
        raise InvalidEmail("the email has no recipient")
    return [address_of(value, "recipient") for value in listed]


@dataclass(frozen=True)
class SenderHeaders:
    """From and Reply-To of one email, and why the configured sender stood in, if it did."""

    from_address: str
    reply_to: str | None = None
    note: str | None = None


def _person(value: object) -> tuple[str | None, str | None]:
    """(name, address) of a payload sender object {"email", "name"}; address None when it is
    missing or not one clean address."""
    if not isinstance(value, Mapping):
        return None, None
    name, email = value.get("name"), value.get("email")
    name = name.strip() if isinstance(name, str) and name.strip() else None
    if not isinstance(email, str):
        return name, None
    try:
        address = address_of(email.strip(), "sender")
    except InvalidEmail:
        return name, None
    if name is not None and _LINE_BREAKS.search(name):
        name = None
    return name, address


def sender_headers(payload: Mapping[str, Any], config: DeliveryConfig,
                   participant: str | None) -> SenderHeaders:
    """From and Reply-To as the spec asked (`from:` sets both, `reply_to:` only Reply-To);
    a sender with no usable address for this participant falls back to the configured
    `from_address` (From) or to none (Reply-To), and the note says so."""
    configured, notes = config.smtp.from_address, []
    sent_as = reply_to = None
    for key in ("from", "reply_to"):
        if key not in payload:
            continue
        name, address = _person(payload[key])
        if address is None:
            given = payload[key].get("email") if isinstance(payload[key], Mapping) else None
            what = "no address" if not given else f"no valid address ({given!r})"
            instead = ("sent from the configured sender" if key == "from"
                       else "no Reply-To" if sent_as is None else "Reply-To is the From")
            notes.append(f"{key}: {what} for {participant}; {instead}")
            continue
        header = formataddr((name, address)) if name else address
        if key == "from":
            sent_as = reply_to = header
        else:
            reply_to = header
    return SenderHeaders(sent_as or configured, reply_to, "; ".join(notes) or None)


def compose_email(action_id: str, recipients: str | Sequence[str | None] | None,
                  subject: str | None, body: str | None, html: bool, config: DeliveryConfig,
                  now: datetime, senders: SenderHeaders | None = None) -> EmailMessage:
    """The message for one email action, to one address or several (all in To:), from the
    configured sender unless `senders` say otherwise; raises InvalidEmail when it cannot be
    made safe."""
    _no_line_breaks("action_id", action_id)
    tos = recipient_addresses(recipients)
    if subject is None:
        raise InvalidEmail("the email has no subject (its template did not render)")
    if body is None:
        raise InvalidEmail("the email has no body (its template did not render)")
    _no_line_breaks("subject", subject)
    from_address = senders.from_address if senders else config.smtp.from_address
    address_of(from_address, "from_address")
    message = EmailMessage()
    try:
        message["From"] = from_address
        if senders is not None and senders.reply_to is not None:
            message["Reply-To"] = senders.reply_to
        message["To"] = tuple(Address(addr_spec=to) for to in tos)
        message["Subject"] = subject
        message["Date"] = format_datetime(now.replace(tzinfo=UTC))
        message["Message-ID"] = message_id(action_id, _domain(config))
        message["X-Cswf-Action-Id"] = action_id
        for name, value in unsubscribe_headers(config, ",".join(tos), action_id).items():
            message[name] = value
    except (ValueError, TypeError) as exc:  # the email package refused a header value
        raise InvalidEmail(f"cannot build the email headers: {exc}") from exc
    text = html_to_text(body) if html else body
    message.set_content(text, cte=_transfer_encoding(text))
    if html:
        message.add_alternative(body, subtype="html", cte=_transfer_encoding(body))
        # A boundary from the content, not random: the same action gives the same bytes.
        digest = hashlib.sha256(f"{action_id}\0{body}".encode()).hexdigest()[:32]
        message.set_boundary(f"cswf-{digest}")
    return message


def _transfer_encoding(text: str) -> str | None:
    """7bit for ASCII (the email package's choice), else quoted-printable: never raw 8bit,
    which a server that did not offer 8BITMIME may mangle."""
    return None if text.isascii() else "quoted-printable"
