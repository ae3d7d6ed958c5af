"""Media URL validation before anything goes out: pure functions, one refusal reason each.

`check_media_url(url, policy)` returns the URL or raises `MediaRefused` whose `rule` is
one of RULES, checked in this order:

- `length`: at most 2,048 characters;
- `syntax`: an absolute URL with a host, no spaces or control characters, a valid port;
- `scheme`: https (plain http only with MEDIA_ALLOW_HTTP=true);
- `credentials`: no user:password@ in it;
- `extension`: the path ends in a supported media extension (contract §5);
- `ip_literal`: the host is not an IP address, unless that exact address is allowed;
- `private_host`: not a loopback, private, link-local or metadata host name, unless that
  exact name is allowed;
- `host`: the host matches MEDIA_ALLOWED_HOSTS (`*.example.com` matches any subdomain).

No DNS lookup happens here: Genesys Cloud, not this service, fetches the media.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import MediaRefused

MAX_URL_CHARS = 2048
SUPPORTED_EXTENSIONS = (".wav", ".mp3", ".ogg", ".opus", ".g711", ".g729")
RULES = ("length", "syntax", "scheme", "credentials", "extension", "ip_literal", "private_host", "host")
# Names that reach the machine itself, its network or a cloud metadata service.
RESERVED_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal", "instance-data",
                            "instance-data.ec2.internal"})
RESERVED_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".lan", ".intranet")
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("100.100.100.200"),
                                ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("169.254.170.2")})
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True, slots=True)
class MediaPolicy:
    """Where media may come from: MEDIA_ALLOWED_HOSTS patterns, and whether http is allowed."""

    allowed_hosts: tuple[str, ...] = ()
    allow_http: bool = False

    @classmethod
    def from_settings(cls, settings) -> MediaPolicy:
        return cls(allowed_hosts=settings.media_allowed_hosts, allow_http=settings.media_allow_http)


def parse_host_pattern(entry: str) -> str:
    """One MEDIA_ALLOWED_HOSTS entry, normalised; ValueError says what is wrong with it."""
    text = entry.strip().lower().rstrip(".")
    wildcard = text.startswith("*.")
    name = text[2:] if wildcard else text
    address = ip_literal(name)
    if address is not None:
        if wildcard:
            raise ValueError(f"{entry.strip()!r}: a wildcard cannot cover an IP address")
        return address.compressed
    if not is_host_name(name):
        raise ValueError(f"{entry.strip()!r} is not a host name (no scheme, port or path; "
                         "wildcards only as a leading '*.')")
    if wildcard and "." not in name:
        raise ValueError(f"{entry.strip()!r} is too broad: a wildcard needs a domain under a suffix")
    return text


def is_host_name(name: str) -> bool:
    labels = name.split(".")
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in labels)


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address if `host` is an IP literal in any spelling a fetcher would accept, else None."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # 127.1, 2130706433, 0x7f.0.0.1: inet_aton accepts them, and so do many HTTP clients.
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def address_range(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The range an address lies in, for refusal messages."""
    if address in METADATA_ADDRESSES:
        return "metadata"
    for name in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(address, f"is_{name}"):
            return name.replace("_", "-")
    return "public"


def reserved_name(host: str) -> bool:
    return host in RESERVED_NAMES or host.endswith(RESERVED_SUFFIXES) or "." not in host


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """True when `host` equals a pattern or is a subdomain of a `*.` pattern's domain."""
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def check_media_url(url: str, policy: MediaPolicy) -> str:
    """`url` if every rule accepts it; otherwise MediaRefused naming the first rule it breaks."""
    if len(url) > MAX_URL_CHARS:
        raise MediaRefused("length", f"the URL has {len(url)} characters; at most {MAX_URL_CHARS} are accepted")
    parts, host = _parsed(url)
    allowed_schemes = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in allowed_schemes:
        only = "http or https" if policy.allow_http else "https (http needs MEDIA_ALLOW_HTTP=true)"
        raise MediaRefused("scheme", f"{parts.scheme or '(none)'}:// is not accepted; use {only}")
    if "@" in parts.netloc:
        raise MediaRefused("credentials", "the URL must not carry a user name or password")
    if not parts.path.lower().endswith(SUPPORTED_EXTENSIONS):
        raise MediaRefused("extension", "the path must end in one of " + " ".join(SUPPORTED_EXTENSIONS))
    address = ip_literal(host)
    if address is not None:
        if address.compressed not in policy.allowed_hosts:
            raise MediaRefused("ip_literal", f"{host} is an IP address ({address_range(address)} range); "
                                             "only an address listed exactly in MEDIA_ALLOWED_HOSTS is accepted")
        return url
    if reserved_name(host) and host not in policy.allowed_hosts:
        raise MediaRefused("private_host", f"{host} names a loopback, private, link-local or metadata host; "
                                           "only a name listed exactly in MEDIA_ALLOWED_HOSTS is accepted")
    if not host_allowed(host, policy.allowed_hosts):
        listed = ", ".join(policy.allowed_hosts) or "nothing (MEDIA_ALLOWED_HOSTS is empty)"
        raise MediaRefused("host", f"{host} is not an allowed media host; allowed: {listed}")
    return url


def _parsed(url: str):
    if _FORBIDDEN_CHARS.search(url):
        raise MediaRefused("syntax", "the URL must not contain spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        raise MediaRefused("syntax", f"not a valid URL ({error})") from None
    host = (parts.hostname or "").rstrip(".")
    if not parts.scheme or not host:
        raise MediaRefused("syntax", "must be an absolute URL with a host, e.g. https://media.example.com/a.wav")
    return parts, host
