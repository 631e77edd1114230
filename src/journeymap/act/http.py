"""One HTTP POST of a delivery, and how its answer is read (webhook and Slack channels).

Redirects are not followed (a POST redirected would be re-sent as a GET without its body): a 3xx is dead, with
the address it points to, so the URL can be fixed. 408, 429 and 5xx are retried (Retry-After honoured, in
seconds or as an HTTP date); any other 4xx is dead with the receiver's status and answer. Timeouts and
connection errors are retried.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from journeymap.act.outcome import Dead, Delivered, Outcome, Refused, Retry, short

RETRYABLE_4XX = (408, 429)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib's hook
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def check_url(url, field: str = "url") -> Refused | None:
    """Refused unless `url` is an absolute http(s) URL with a host."""
    if not isinstance(url, str) or not url:
        return Refused(f"the payload has no {field}")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return Refused(f"{field} {url!r} is not an http(s) URL; nothing was sent")
    return None


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable.

    >>> retry_after("120"), retry_after(None), retry_after("soon")
    (120.0, None, None)
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "journeymap", **headers})
    try:
        with _opener.open(request, timeout=timeout) as answer:
            answer.read(64 * 1024)
            return Delivered(f"HTTP {answer.status}")
    except urllib.error.HTTPError as exc:
        code = exc.code
        try:
            text = exc.read(4096).decode("utf-8", "replace")
        except OSError:
            text = ""
        said = f"HTTP {code} from {url}" + (f": {short(text)}" if text.strip() else "")
        if 300 <= code < 400:
            return Dead(f"{said} (redirected to {exc.headers.get('Location')}; set the URL to where it points)")
        if code in RETRYABLE_4XX or code >= 500:
            return Retry(said, retry_after(exc.headers.get("Retry-After")))
        return Dead(said)
    except TimeoutError:
        return Retry(f"no answer from {url} within {timeout:g} s")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return Retry(f"no answer from {url} within {timeout:g} s")
        return Retry(f"cannot reach {url}: {reason}")
    except (OSError, ValueError) as exc:  # reset connection, a malformed answer
        return Retry(f"cannot reach {url}: {type(exc).__name__}: {exc}")
