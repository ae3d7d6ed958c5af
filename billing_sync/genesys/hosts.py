"""Where a Genesys Cloud org lives: GENESYS_ENVIRONMENT → API and login base URLs (contract §1)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

# The official SDK's region enum.
REGIONS = {
    "us-east-1": "mypurecloud.com",
    "eu-west-1": "mypurecloud.ie",
    "ap-southeast-2": "mypurecloud.com.au",
    "ap-northeast-1": "mypurecloud.jp",
    "eu-central-1": "mypurecloud.de",
    "us-west-2": "usw2.pure.cloud",
    "ca-central-1": "cac1.pure.cloud",
    "ap-northeast-2": "apne2.pure.cloud",
    "eu-west-2": "euw2.pure.cloud",
    "ap-south-1": "aps1.pure.cloud",
    "us-east-2": "use2.us-gov-pure.cloud",
    "sa-east-1": "sae1.pure.cloud",
    "me-central-1": "mec1.pure.cloud",
    "ap-northeast-3": "apne3.pure.cloud",
    "eu-central-2": "euc2.pure.cloud",
    "mx-central-1": "mxc1.pure.cloud",
    "ap-southeast-1": "apse1.pure.cloud",
}
ACCEPTED_FORMS = (
    "a region host (mypurecloud.ie, usw2.pure.cloud), a region code (eu-west-1, us_west_2) "
    "or an absolute http(s) URL"
)


@dataclass(frozen=True, slots=True)
class GenesysHosts:
    api_base: str
    login_base: str


def resolve_environment(value: str) -> GenesysHosts:
    """API and login bases for a GENESYS_ENVIRONMENT value; ValueError lists the accepted forms."""
    raw = value.strip()
    if "://" in raw:
        return _from_url(raw)
    code = raw.lower().replace("_", "-")
    host = REGIONS.get(code) or (code if code in REGIONS.values() else None)
    if host is None:
        raise ValueError(f"unknown Genesys Cloud environment {value!r}; expected {ACCEPTED_FORMS}")
    return GenesysHosts(api_base=f"https://api.{host}", login_base=f"https://login.{host}")


def _from_url(raw: str) -> GenesysHosts:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"unknown Genesys Cloud environment {raw!r}; expected {ACCEPTED_FORMS}")
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    login = base
    if parts.hostname.startswith("api."):
        login_netloc = parts.netloc.replace("api.", "login.", 1)
        login = f"{parts.scheme}://{login_netloc}{parts.path.rstrip('/')}"
    return GenesysHosts(api_base=base, login_base=login)
