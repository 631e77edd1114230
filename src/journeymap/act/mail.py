"""Email through SMTP. The server and its credentials come from the environment, never from journeymap.yml:

  JOURNEYMAP_SMTP_HOST      the server (required to send email)
  JOURNEYMAP_SMTP_PORT      default 587 with starttls, 465 with ssl, 25 with none
  JOURNEYMAP_SMTP_TLS       starttls (default), ssl, or none
  JOURNEYMAP_SMTP_USER      with JOURNEYMAP_SMTP_PASSWORD: log in before sending (none: send without logging in)
  JOURNEYMAP_SMTP_PASSWORD
  JOURNEYMAP_SMTP_FROM      the From address (required to send email)

Each message has a Message-ID derived from the outbox row's key, the same on every attempt, and the key itself
in an X-Journeymap-Key header, so a receiver (or a mail filter) can de-duplicate a re-sent message.
An SMTP 5xx answer (a rejected address, failed login) is dead; a 4xx or a dropped connection is retried.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate

from journeymap.act.outcome import Dead, Delivered, Outcome, Refused, Retry, short

ENV = {k: f"JOURNEYMAP_SMTP_{k.upper()}" for k in ("host", "port", "tls", "user", "password", "from")}
TLS_MODES = {"starttls": 587, "ssl": 465, "none": 25}


def message_id(key: str) -> str:
    """The Message-ID of the row `key`: the same on every attempt.

    >>> message_id("onboarding/acme/1/0")
    '<5cc83c35fc24aa5933569e957d96f1a9@journeymap>'
    """
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@journeymap>"


def settings(env: Mapping[str, str]) -> dict | Refused:
    host = env.get(ENV["host"], "").strip()
    if not host:
        return Refused(f"{ENV['host']} is not set: email needs an SMTP server ({ENV['host']}, {ENV['port']}, "
                       f"{ENV['tls']}, {ENV['user']}, {ENV['password']}, {ENV['from']}); nothing was sent")
    tls = env.get(ENV["tls"], "starttls").strip().lower() or "starttls"
    if tls not in TLS_MODES:
        return Refused(f"{ENV['tls']} is {tls!r}: it takes starttls, ssl or none; nothing was sent")
    port_text = env.get(ENV["port"], "").strip()
    try:
        port = int(port_text) if port_text else TLS_MODES[tls]
    except ValueError:
        return Refused(f"{ENV['port']} is {port_text!r}, not a port number; nothing was sent")
    sender = env.get(ENV["from"], "").strip()
    if "@" not in sender:
        return Refused(f"{ENV['from']} is {'not set' if not sender else repr(sender)}: email needs a From address; "
                       "nothing was sent")
    user, password = env.get(ENV["user"], ""), env.get(ENV["password"], "")
    if user and not password:
        return Refused(f"{ENV['user']} is set but {ENV['password']} is not; nothing was sent")
    return {"host": host, "port": port, "tls": tls, "user": user, "password": password, "from": sender}


def check(payload: Mapping, env: Mapping[str, str]) -> dict | Refused:
    to = payload.get("to")
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to:
        return Refused("the payload has no `to` addresses")
    bad = [a for a in to if not isinstance(a, str) or "@" not in a]
    if bad:
        return Refused(f"not an email address: {bad[0]!r}; nothing was sent (an owner's name: give its address "
                       f"under `owners:` in journeymap.yml)")
    return settings(env)


def build(key: str, payload: Mapping, sender: str) -> EmailMessage:
    to = payload["to"] if isinstance(payload["to"], list) else [payload["to"]]
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = str(payload.get("subject") or "journeymap")
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id(key)
    msg["X-Journeymap-Key"] = key
    msg.set_content(str(payload.get("text") or ""))
    return msg


def send(key: str, payload: Mapping, env: Mapping[str, str], timeout: float) -> Outcome:
    conf = check(payload, env)
    if isinstance(conf, Refused):
        return conf
    msg = build(key, payload, conf["from"])
    where = f"{conf['host']}:{conf['port']}"
    try:
        if conf["tls"] == "ssl":
            smtp = smtplib.SMTP_SSL(conf["host"], conf["port"], timeout=timeout, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(conf["host"], conf["port"], timeout=timeout)
        with smtp:
            if conf["tls"] == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if conf["user"]:
                smtp.login(conf["user"], conf["password"])
            refused = smtp.send_message(msg)
    except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS (or no AUTH): a setting to fix, not a passing failure
        return Dead(short(f"SMTP {where}: {exc} (with {ENV['tls']}={conf['tls']}"
                          f"{' and a login' if conf['user'] else ''}); nothing was sent"))
    except smtplib.SMTPRecipientsRefused as exc:
        said = "; ".join(f"{a}: {c} {m.decode('utf-8', 'replace') if isinstance(m, bytes) else m}"
                         for a, (c, m) in exc.recipients.items())
        permanent = all(c >= 500 for c, _ in exc.recipients.values())
        return (Dead if permanent else Retry)(short(f"SMTP {where} refused every recipient: {said}"))
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        said = short(f"SMTP {where} answered {exc.smtp_code}: {text}")
        return Dead(said) if exc.smtp_code >= 500 else Retry(said)
    except (smtplib.SMTPException, OSError) as exc:  # refused connection, timeout, dropped connection, TLS failure
        return Retry(short(f"SMTP {where}: {type(exc).__name__}: {exc}"))
    if refused:  # accepted for some recipients: those are delivered; the others are said, not retried
        return Delivered(short(f"refused by {where}: " + "; ".join(f"{a}: {c}" for a, (c, _) in refused.items())))
    return Delivered(f"accepted by {where}")
