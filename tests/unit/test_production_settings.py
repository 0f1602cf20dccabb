"""Production mode refuses development secrets: each unsafe setting is named, a fully
configured production passes, development runs on its defaults as before; a production API
is never built unsafe and takes no `dev-<role>` token; printed URLs hide their password."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import httpx
import pytest

from api.app import create_app
from orderflow.demo_carriers import DEMO_CARRIERS
from orderflow.redact import redact_url
from orderflow.settings import ROLES, Settings, UnsafeForProduction


def _secret() -> str:
    return secrets.token_urlsafe(32)


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def production(**changes: Any) -> Settings:
    """Production settings with every secret set well, then `changes` on top."""
    values: dict[str, Any] = {
        "mode": "production",
        "customer_token_secret": _secret(),
        "api_tokens": {role: secrets.token_urlsafe(24) for role in ROLES},
        "carrier_webhook_secrets": {carrier.code: _secret() for carrier in DEMO_CARRIERS},
        "psp_api_key": _secret(),
        "psp_webhook_secret": _secret(),
        "payload_keys": {"k1": _key()},
        "payload_key_id": "k1",
    }
    values.update(changes)
    return Settings(**values)


def refusal(settings: Settings) -> str:
    with pytest.raises(UnsafeForProduction) as refused:
        settings.require_safe_for_production()
    return str(refused.value)


def test_fully_configured_production_passes() -> None:
    settings = production()
    assert settings.production_problems() == []
    settings.require_safe_for_production()


def test_development_passes_on_its_defaults() -> None:
    settings = Settings(mode="development")
    settings.require_safe_for_production()
    # Development still runs on the development values.
    assert settings.customer_token_secret == "dev-customer-token-secret"
    assert settings.effective_tokens()["dev-admin"] == "admin"


def test_production_with_the_defaults_names_every_unsafe_setting() -> None:
    message = refusal(Settings(mode="production"))
    assert "ORDERFLOW_CUSTOMER_TOKEN_SECRET is the development default" in message
    for role in ROLES:
        assert f"ORDERFLOW_API_TOKENS (role '{role}') is unset" in message
    for carrier in DEMO_CARRIERS:
        assert f"ORDERFLOW_CARRIER_WEBHOOK_SECRETS (carrier '{carrier.code}') is unset" in message
    assert "ORDERFLOW_PAYLOAD_KEYS is unset" in message


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"customer_token_secret": ""}, "ORDERFLOW_CUSTOMER_TOKEN_SECRET is unset"),
        (
            {"customer_token_secret": "dev-customer-token-secret"},
            "ORDERFLOW_CUSTOMER_TOKEN_SECRET is the development default",
        ),
        (
            {"customer_token_secret": "x" * 31},
            "ORDERFLOW_CUSTOMER_TOKEN_SECRET is too short (31 characters; at least 32)",
        ),
    ],
)
def test_the_customer_token_secret_is_named(changes: dict[str, Any], named: str) -> None:
    message = refusal(production(**changes))
    assert named in message
    assert message.count("\n  - ") == 1


def test_api_tokens_every_role_long_and_not_the_development_token() -> None:
    good = production().api_tokens
    missing = {role: token for role, token in good.items() if role != "purchasing"}
    assert "ORDERFLOW_API_TOKENS (role 'purchasing') is unset" in refusal(
        production(api_tokens=missing)
    )
    assert "ORDERFLOW_API_TOKENS (role 'admin') is the development default" in refusal(
        production(api_tokens={**good, "admin": "dev-admin"})
    )
    assert "ORDERFLOW_API_TOKENS (role 'storefront') is a development value" in refusal(
        production(api_tokens={**good, "storefront": "dev-storefront-token-of-some-length"})
    )
    assert "ORDERFLOW_API_TOKENS (role 'reviewer') is too short" in refusal(
        production(api_tokens={**good, "reviewer": "r" * 23})
    )
    assert "gives two roles the same token" in refusal(
        production(api_tokens={**good, "warehouse": good["logistics"]})
    )


def test_every_carrier_needs_its_own_strong_webhook_secret() -> None:
    good = production().carrier_webhook_secrets
    without_gls = {code: secret for code, secret in good.items() if code != "gls"}
    assert "ORDERFLOW_CARRIER_WEBHOOK_SECRETS (carrier 'gls') is unset" in refusal(
        production(carrier_webhook_secrets=without_gls)
    )
    assert "(carrier 'dhl') is the development default" in refusal(
        production(carrier_webhook_secrets={**good, "dhl": "dev-carrier-secret-dhl"})
    )
    assert "(carrier 'ups') is too short" in refusal(
        production(carrier_webhook_secrets={**good, "ups": "from-config"})
    )
    # A carrier the shop books beyond the seeded ones is checked when named.
    assert production().production_problems(carriers=["hermes"]) == [
        "ORDERFLOW_CARRIER_WEBHOOK_SECRETS (carrier 'hermes') is unset"
    ]


def test_payload_keys_are_set_and_name_the_current_key() -> None:
    assert "ORDERFLOW_PAYLOAD_KEYS is unset" in refusal(
        production(payload_keys={}, payload_key_id=None)
    )
    assert "ORDERFLOW_PAYLOAD_KEY_ID is unset" in refusal(production(payload_key_id=None))
    assert "ORDERFLOW_PAYLOAD_KEY_ID 'k2' is not a key of ORDERFLOW_PAYLOAD_KEYS" in refusal(
        production(payload_key_id="k2")
    )
    short_key = base64.b64encode(b"0" * 16).decode()
    assert "ORDERFLOW_PAYLOAD_KEYS (key 'k0') is not the base64 of 32 bytes" in refusal(
        production(payload_keys={"k0": short_key, "k1": _key()})
    )


def test_the_refusal_never_shows_a_secret() -> None:
    short = "s3cret-but-short"
    message = refusal(production(customer_token_secret=short))
    assert short not in message


def test_smtp_password_with_a_username_is_fine() -> None:
    production(smtp_username="shop", smtp_password=_secret()).require_safe_for_production()


async def test_production_api_is_never_built_unsafe_and_refuses_dev_tokens() -> None:
    with pytest.raises(UnsafeForProduction, match="ORDERFLOW_CUSTOMER_TOKEN_SECRET"):
        create_app(Settings(mode="production"))

    settings = production()
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        dev = await client.get("/reviews/pending", headers={"Authorization": "Bearer dev-admin"})
        assert dev.status_code == 401
        wrong_role = await client.get(
            "/reviews/pending",
            headers={"Authorization": f"Bearer {settings.api_tokens['storefront']}"},
        )
        assert wrong_role.status_code == 403


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://orderflow:s3cr%40t@db.example:5432/orderflow",
            "postgresql://orderflow:***@db.example:5432/orderflow",
        ),
        (
            "postgresql://shop@db/orderflow?sslmode=require&password=hunter2",
            "postgresql://shop@db/orderflow?sslmode=require&password=***",
        ),
        ("postgresql://postgres@127.0.0.1:5433/orderflow", None),
        ("http://127.0.0.1:8000", None),
    ],
)
def test_printed_urls_hide_their_password(url: str, shown: str | None) -> None:
    assert redact_url(url) == (shown or url)
