"""Settings from the environment: required variables, https only, secrets that never show."""

import pytest

from batch.config import ApiConfig, Secret, checked_url
from batch.errors import InsecureURLError, UsageError

ENV = {
    "CL_BASE_URL": "https://acme.commercelayer.io/",
    "CL_CLIENT_ID": "cid",
    "CL_CLIENT_SECRET": "very-secret",
}


def test_from_env_with_defaults() -> None:
    config = ApiConfig.from_env(ENV)
    assert config.base_url == "https://acme.commercelayer.io"
    assert config.auth_url == "https://auth.commercelayer.io/oauth/token"
    assert config.scope is None
    assert config.api_host == "acme.commercelayer.io"
    assert "very-secret" not in repr(config)
    assert "very-secret" not in str(config.client_secret)
    assert f"{config.client_secret}" == "Secret('***')"


def test_scope_and_auth_url() -> None:
    config = ApiConfig.from_env(
        {**ENV, "CL_SCOPE": "market:code:europe", "CL_AUTH_URL": "https://auth.example.com/t"}
    )
    assert config.scope == "market:code:europe"
    assert config.auth_url == "https://auth.example.com/t"


def test_missing_variables_are_named() -> None:
    with pytest.raises(UsageError, match="CL_CLIENT_ID, CL_CLIENT_SECRET"):
        ApiConfig.from_env({"CL_BASE_URL": "https://acme.commercelayer.io"})


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "http://127.1.2.3"]
)
def test_plain_http_only_for_loopback(url: str) -> None:
    assert checked_url("CL_BASE_URL", url) == url


@pytest.mark.parametrize(
    "url", ["http://acme.commercelayer.io", "http://10.0.0.1", "http://localhost.evil.com"]
)
def test_plain_http_elsewhere_is_refused(url: str) -> None:
    with pytest.raises(InsecureURLError, match="only https is allowed"):
        checked_url("CL_BASE_URL", url)


@pytest.mark.parametrize("url", ["ftp://acme", "acme.commercelayer.io", "https://"])
def test_not_a_url(url: str) -> None:
    with pytest.raises(UsageError, match="must be an http"):
        checked_url("CL_BASE_URL", url)


def test_secret_equality_without_showing() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a").reveal() == "a"
