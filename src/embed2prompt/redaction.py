"""Credentials kept out of what we show: log lines, error messages, responses.

Libraries log what they do with the settings' values: httpx logs each request's URL
(``http://user:password@host/v1/...`` when the base URL carries a proxy's credentials),
and a traceback may quote a key. :class:`CredentialFilter`, on the log handlers,
rewrites every record that reaches a handler, its message and its traceback, with a
URL's ``user:password@``, its query and fragment, and each known secret replaced by
``***``; code that names a URL itself (an error, the resume hint, ``/health``) shows
:func:`hide_url_credentials`.
It imports nothing of ours at module level, so that every layer can use it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from embed2prompt.settings import Settings

HIDDEN = "***"
# scheme://user[:password]@ : what a URL carries before its host
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@]+@")
# A URL's query or fragment (a key such as ?api-key=... can ride there): up to the
# next space or quote, since a URL in a log line may be malformed (a base URL with a
# query, joined with a path after it).
_URL_QUERY = re.compile(
    r"(?P<url>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#\"'<>]*)(?P<mark>[?#])[^\s\"'<>]+"
)


def hide_credentials(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each of ``secrets``, and every URL's user, password, query and
    fragment, replaced by ``***`` (as :func:`hide_url_credentials` shows one URL)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, HIDDEN)
    text = _URL_CREDENTIALS.sub(rf"\g<scheme>{HIDDEN}@", text)
    return _URL_QUERY.sub(rf"\g<url>\g<mark>{HIDDEN}", text)


def hide_url_credentials(url: str) -> str:
    """``url`` as it may be shown: ``***`` in place of its user and password, its query
    and its fragment (a key can ride in any of them); scheme, host, port and path as
    given, so that the reader knows which server, and that something was left out."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{HIDDEN}@{host}" if "@" in parts.netloc else host
    query = HIDDEN if parts.query else ""
    fragment = HIDDEN if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in ``settings`` (keys, and URLs whose credentials must go)."""
    found = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            found.append(str(value.get_secret_value()))
    return [secret for secret in found if secret]


def secrets_of_environment() -> list[str]:
    """The secrets of the settings that the environment gives, or none if it gives
    invalid settings (that error is reported where the settings are read)."""
    import pydantic

    from embed2prompt.settings import Settings

    try:
        return secrets_of(Settings())
    except pydantic.ValidationError:
        return []


class CredentialFilter(logging.Filter):
    """A handler filter: each record's message and traceback without credentials."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({secret for secret in secrets if secret}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = hide_credentials(message, self._secrets)
        if hidden != message:
            record.msg, record.args = hidden, None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = hide_credentials(text, self._secrets)
        return True


def install(secrets: Iterable[str], logger_names: Iterable[str] = ("",)) -> None:
    """Put a :class:`CredentialFilter` on every handler of these loggers (the root's by
    default): records from any logger that reach them pass through it."""
    credential_filter = CredentialFilter(secrets)
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(credential_filter)
