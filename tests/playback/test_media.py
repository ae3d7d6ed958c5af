"""Media URL rules as pure functions: each refusal names exactly one rule; MEDIA_* settings parse."""

from __future__ import annotations

import pytest

from billing_sync.config import ConfigError, Settings
from billing_sync.playback.errors import MediaRefused
from billing_sync.playback.media import RULES, MediaPolicy, check_media_url, parse_host_pattern

from ..conftest import RATE_ENV

POLICY = MediaPolicy(allowed_hosts=("media.example.com", "*.cdn.example.net", "10.0.0.5", "::1", "media.internal"))


@pytest.mark.parametrize("url", [
    "https://media.example.com/welcome.wav",
    "https://MEDIA.example.com./a/b/c.MP3?x=1#t",
    "https://eu.cdn.example.net/a.ogg",
    "https://a.b.cdn.example.net/a.opus",
    "https://media.example.com:8443/a.g711",
    "https://media.example.com/a.g729",
    "https://10.0.0.5/a.wav",          # listed exactly
    "https://[::1]/a.wav",             # listed exactly
    "https://media.internal/a.wav",    # listed exactly
])
def test_accepted(url):
    assert check_media_url(url, POLICY) == url


@pytest.mark.parametrize(("url", "rule"), [
    ("https://media.example.com/" + "a" * 2030 + ".wav", "length"),
    ("media.example.com/a.wav", "syntax"),
    ("https:///a.wav", "syntax"),
    ("https://media.example.com/a b.wav", "syntax"),
    ("https://media.example.com\\@evil/a.wav", "syntax"),
    ("https://media.example.com:99999/a.wav", "syntax"),
    ("http://media.example.com/a.wav", "scheme"),
    ("file://media.example.com/a.wav", "scheme"),
    ("https://user@media.example.com/a.wav", "credentials"),
    ("https://user:pw@media.example.com/a.wav", "credentials"),
    ("https://media.example.com/a.wav.exe", "extension"),
    ("https://media.example.com/", "extension"),
    ("https://10.0.0.6/a.wav", "ip_literal"),
    ("https://8.8.8.8/a.wav", "ip_literal"),
    ("https://0x7f.1/a.wav", "ip_literal"),
    ("https://017700000001/a.wav", "ip_literal"),
    ("https://[fd00:ec2::254]/a.wav", "ip_literal"),
    ("https://localhost/a.wav", "private_host"),
    ("https://app.localhost/a.wav", "private_host"),
    ("https://printer.local/a.wav", "private_host"),
    ("https://metadata.google.internal/a.wav", "private_host"),
    ("https://intranet/a.wav", "private_host"),
    ("https://example.com/a.wav", "host"),
    ("https://cdn.example.net/a.wav", "host"),            # the wildcard covers subdomains only
    ("https://media.example.com.evil.net/a.wav", "host"),
    ("https://evilmedia.example.com/a.wav", "host"),
])
def test_refused_naming_one_rule(url, rule):
    with pytest.raises(MediaRefused) as refused:
        check_media_url(url, POLICY)
    assert refused.value.rule == rule
    assert rule in RULES
    assert str(refused.value).startswith(f"{rule}: ")


def test_ip_refusals_name_the_range():
    for url, range_name in (("https://127.0.0.1/a.wav", "loopback"), ("https://169.254.169.254/a.wav", "metadata"),
                            ("https://192.168.1.1/a.wav", "private"), ("https://169.254.1.1/a.wav", "link-local")):
        with pytest.raises(MediaRefused, match=f"\\({range_name} range\\)"):
            check_media_url(url, POLICY)


def test_http_only_when_allowed():
    allowing = MediaPolicy(allowed_hosts=("media.example.com",), allow_http=True)
    assert check_media_url("http://media.example.com/a.wav", allowing)
    with pytest.raises(MediaRefused, match="^scheme: ftp"):
        check_media_url("ftp://media.example.com/a.wav", allowing)


def test_an_empty_allow_list_refuses_every_host():
    with pytest.raises(MediaRefused, match="MEDIA_ALLOWED_HOSTS is empty"):
        check_media_url("https://media.example.com/a.wav", MediaPolicy())


@pytest.mark.parametrize(("entry", "normalised"), [
    ("Media.Example.COM.", "media.example.com"), ("*.CDN.example.net", "*.cdn.example.net"),
    ("10.0.0.5", "10.0.0.5"), ("[::1]", "::1"),
])
def test_host_patterns_normalise(entry, normalised):
    assert parse_host_pattern(entry) == normalised


@pytest.mark.parametrize("entry", ["*.com", "https://a.com", "a.com:443", "a.com/x", "*.10.0.0.1", "a..com", "*"])
def test_bad_host_patterns_are_refused(entry):
    with pytest.raises(ValueError):
        parse_host_pattern(entry)


BASE = {"BILLING_SYNC_WEBHOOK_USERNAME": "genesys", "BILLING_SYNC_WEBHOOK_PASSWORD": "s3cret", **RATE_ENV}


def test_media_settings_are_read_and_validated():
    settings = Settings.from_env({**BASE, "MEDIA_ALLOWED_HOSTS": " media.example.com, *.cdn.example.net ,,",
                                  "MEDIA_ALLOW_HTTP": "true"}, env_file=None)
    assert settings.media_allowed_hosts == ("media.example.com", "*.cdn.example.net")
    assert settings.media_allow_http is True
    defaults = Settings.from_env(BASE, env_file=None)
    assert (defaults.media_allowed_hosts, defaults.media_allow_http) == ((), False)


@pytest.mark.parametrize(("variable", "value"), [("MEDIA_ALLOWED_HOSTS", "https://media.example.com"),
                                                  ("MEDIA_ALLOW_HTTP", "maybe")])
def test_malformed_media_settings_are_one_line_naming_them(variable, value):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**BASE, variable: value}, env_file=None)
    assert str(error.value).startswith(variable) and "\n" not in str(error.value)
