"""The one typed settings object, read from the environment (and `.env`).

Everything configurable lives here; modules take a `Settings` instead of reading
`os.environ` or keeping constants of their own. Names without the `ORDERFLOW_` prefix
(`TEMPORAL_ADDRESS`, `DATABASE_URL`, ...) are the conventional ones operators expect.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orderflow.models.marketplace import MarketplaceConfig
from orderflow.models.policy import OrderPolicy
from orderflow.models.replenishment import ReplenishmentSettings
from orderflow.models.returns import ReturnPolicy

ROLES = ("storefront", "reviewer", "warehouse", "purchasing", "logistics", "admin")

# Production mode refuses shorter secrets (HMAC keys, the customer token secret) and
# shorter operator tokens: both are guessable offline or by brute force below these.
MIN_SECRET_LENGTH = 32
MIN_TOKEN_LENGTH = 24
# Every development value in the code starts with it (`dev-<role>`, `dev-customer-token-
# secret`, `dev-carrier-secret-<code>`, ...); production accepts no value that does.
DEVELOPMENT_PREFIX = "dev-"
# Single secrets a production process refuses to start without: (field, environment
# variable). A secret added later (the PSP's API key and webhook secret, outbound webhook
# signing) joins the production check with one line here.
# The payload key of development mode (orderflow/payload_codec.py): public, so refused in
# production like every other development value.
DEVELOPMENT_PAYLOAD_KEY_ID = "dev"
DEVELOPMENT_PAYLOAD_KEY = "b3JkZXJmbG93LWRldmVsb3BtZW50LW9ubHkta2V5ISE="

PRODUCTION_SECRETS: tuple[tuple[str, str], ...] = (
    ("customer_token_secret", "ORDERFLOW_CUSTOMER_TOKEN_SECRET"),
    ("psp_api_key", "ORDERFLOW_PSP_API_KEY"),
    ("psp_webhook_secret", "ORDERFLOW_PSP_WEBHOOK_SECRET"),
)


class UnsafeForProduction(RuntimeError):
    """Production mode with a secret unset, too short or at a development value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            "refusing to start in production mode (ORDERFLOW_MODE=production):\n"
            f"{lines}\n"
            "Set them in the environment or in .env (see .env.example)."
        )


def _secret_problem(env: str, value: str | None, *, minimum: int, default: object) -> str | None:
    """Why `value` may not be the production value of `env`, or None; never shows it."""
    if not value:
        return f"{env} is unset"
    if value == default:
        return f"{env} is the development default"
    if value.startswith(DEVELOPMENT_PREFIX):
        return f"{env} is a development value (starts with {DEVELOPMENT_PREFIX!r})"
    if len(value) < minimum:
        return f"{env} is too short ({len(value)} characters; at least {minimum})"
    return None


def _is_aes256_key(value: str) -> bool:
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            if len(decode(value.encode("ascii"))) == 32:
                return True
        except (binascii.Error, ValueError):
            continue
    return False


class Settings(BaseSettings):
    """Runtime configuration of every orderflow process."""

    # An empty variable (`KEY=` as copied from .env.example) counts as unset, rather than as
    # an unparseable JSON value or an empty secret.
    model_config = SettingsConfigDict(
        env_prefix="ORDERFLOW_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    mode: Literal["development", "production"] = "development"
    state_dir: Path = Path(".orderflow")

    # Temporal
    temporal_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "ORDERFLOW_TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "ORDERFLOW_TEMPORAL_NAMESPACE"),
    )
    temporal_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TEMPORAL_API_KEY", "ORDERFLOW_TEMPORAL_API_KEY"),
    )
    temporal_tls: bool = Field(
        default=False, validation_alias=AliasChoices("TEMPORAL_TLS", "ORDERFLOW_TEMPORAL_TLS")
    )
    temporal_tls_cert: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("TEMPORAL_TLS_CERT", "ORDERFLOW_TEMPORAL_TLS_CERT"),
    )
    temporal_tls_key: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("TEMPORAL_TLS_KEY", "ORDERFLOW_TEMPORAL_TLS_KEY"),
    )
    task_queue: str = "orderflow-orders"
    temporal_grpc_port: int = 7233
    temporal_ui_port: int = 8233

    # PostgreSQL
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "ORDERFLOW_DATABASE_URL")
    )
    postgres_port: int = 5433
    db_pool_min: int = 2
    db_pool_max: int = 20

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_max_body_bytes: int = 64 * 1024
    # How long a request waits for a worker to take a message (e.g. a cancel) before the
    # API leaves it with the order as a durable request and answers 202 "pending".
    api_update_wait_seconds: float = Field(default=10.0, gt=0)
    # role -> token; development mode also accepts `dev-<role>`.
    api_tokens: dict[str, str] = Field(default_factory=dict)
    # HMAC secrets per carrier code for the tracking webhook.
    carrier_webhook_secrets: dict[str, str] = Field(default_factory=dict)
    # Secret that signs per-order customer access tokens.
    customer_token_secret: str = "dev-customer-token-secret"
    # Input bounds checked at the API edge (placement, receipts, feedback).
    # An order's `placed_at` is the storefront's clock: one older than placed_at_max_age or
    # more than placed_at_max_ahead in the future is refused with 422 (a clock gone wrong, or
    # a client trying to jump a queue), rather than recorded.
    placed_at_max_age: timedelta = timedelta(days=30)
    placed_at_max_ahead: timedelta = timedelta(minutes=5)
    # An order a step could never process (rejected, in customer service's queue) is due
    # this long after it was rejected.
    unprocessable_order_sla: timedelta = timedelta(hours=4)
    # Keys that encrypt workflow payloads (orders, feedback, risk reasons) in Temporal's
    # history: key id -> base64 of 32 bytes (AES-256-GCM). New payloads use `payload_key_id`;
    # any listed key decrypts, so a key rotates by adding the new one, switching the id, and
    # removing the old one once no running order's history needs it. Empty: a fixed
    # development key, refused in production.
    payload_keys: dict[str, str] = Field(default_factory=dict)
    payload_key_id: str | None = None
    # Origins allowed to call the codec endpoint from a browser (the Temporal Web UI).
    codec_cors_origins: list[str] = Field(default_factory=lambda: ["http://localhost:8233"])

    # Carrier simulator (the project's own stand-in for carriers' APIs)
    carrier_api_url: str = "http://127.0.0.1:8100"
    carrier_simulator_port: int = 8100
    # Where the simulator posts tracking events back to (the API's carrier webhook).
    carrier_webhook_base_url: str = "http://127.0.0.1:8000"
    carrier_http_timeout_seconds: float = 5.0

    # Payment service provider: its API (activities/psp_client.py) and the project's own
    # stand-in for it (simulators/psp.py); POST /control changes the simulator at run time.
    psp_api_url: str = "http://127.0.0.1:8200"
    # The adapter sends it as `Authorization: Bearer`; the simulator refuses other keys.
    psp_api_key: str = "dev-psp-api-key"
    # Signs the PSP's webhook events (capture, refund, dispute) to the API.
    psp_webhook_secret: str = "dev-psp-webhook-secret"
    # Unset: http://127.0.0.1:<api_port>/payments/events.
    psp_webhook_url: str = ""
    psp_http_timeout_seconds: float = Field(default=5.0, gt=0)
    # Attempts of one adapter call on transient failures (connection, 5xx, 429), with
    # exponential backoff from base up to max between them.
    psp_client_attempts: int = Field(default=4, ge=1)
    psp_client_backoff_seconds: float = Field(default=0.2, ge=0)
    psp_client_backoff_max_seconds: float = Field(default=2.0, ge=0)
    # How long an authorisation lasts when the checkout names no expiry.
    payment_authorization_ttl: timedelta = timedelta(days=7)
    psp_simulator_host: str = "127.0.0.1"
    psp_simulator_port: int = 8200
    # normal | slow: answers late | fail: 503 N times per idempotency key | expired: every
    # authorisation has lapsed | refuse: declines | async: captures answer 202, then a webhook.
    psp_simulator_mode: Literal["normal", "slow", "fail", "expired", "refuse", "async"] = "normal"
    psp_simulator_fail_times: int = Field(default=2, ge=0)
    psp_simulator_slow_seconds: float = Field(default=3.0, ge=0)
    # Delay before the webhook of an asynchronous outcome (capture, refund settlement).
    psp_simulator_webhook_delay_seconds: float = Field(default=0.2, ge=0)
    # Operations on an unknown transaction create it from the `payment` facts they carry.
    psp_simulator_adopt_unknown: bool = True
    psp_simulator_webhook_attempts: int = Field(default=8, ge=1)
    psp_simulator_webhook_backoff_seconds: float = Field(default=0.2, ge=0)
    psp_simulator_webhook_backoff_max_seconds: float = Field(default=5.0, ge=0)

    # Marketplaces the shop sells on (`ORDERFLOW_MARKETPLACES`, a JSON list of
    # {code, base_url, api_key, poll_seconds}): each has a durable poller in the worker.
    marketplaces: list[MarketplaceConfig] = Field(default_factory=list)
    marketplace_http_timeout_seconds: float = Field(default=5.0, gt=0)
    marketplace_page_size: int = Field(default=50, ge=1, le=500)
    # The project's stand-in for them (simulators/marketplace.py): one process serving each
    # code under its own path (`http://<host>:<port>/<code>`), with demo orders arriving
    # every `marketplace_simulator_demo_seconds` (0: none) until told otherwise.
    marketplace_simulator_host: str = "127.0.0.1"
    marketplace_simulator_port: int = 8300
    marketplace_simulator_api_key: str = "dev-marketplace-api-key"
    marketplace_simulator_codes: list[str] = Field(default_factory=lambda: ["mkt-a", "mkt-b"])
    marketplace_simulator_demo_seconds: float = Field(default=0.0, ge=0)

    # The shop
    shop_country: str = "DE"
    shop_currencies: list[str] = Field(default_factory=lambda: ["EUR"])
    max_quantity_per_line: int = 1000
    max_lines_per_order: int = 100

    # Risk review: weights of each signal, in configuration not in code
    risk_flag_threshold: float = 50.0
    risk_weights: dict[str, float] = Field(default_factory=dict)
    risk_block_list_emails: list[str] = Field(default_factory=list)
    risk_block_list_postal_codes: list[str] = Field(default_factory=list)
    # Risk calibration (workflows/risk_calibration.py): the target operating point (catch
    # this share of labelled fraud, flag at most this share of orders), the latest share of
    # labelled orders held out to judge a new threshold on, and its Temporal Schedule.
    risk_target_recall: float = Field(default=0.9, ge=0, le=1)
    risk_flag_budget: float = Field(default=0.08, ge=0, le=1)
    risk_calibration_holdout: float = Field(default=0.3, gt=0, lt=1)
    risk_calibration_tolerance: float = Field(default=0.005, ge=0, le=0.2)
    risk_calibration_min_positives: int = Field(default=5, ge=1)
    # An auto-approved order with no fraud report or chargeback this long after it was
    # placed counts as legitimate in the labelled history.
    risk_label_settle_days: int = Field(default=30, ge=0)
    # How far back a calibration reads the labelled history.
    risk_calibration_window_days: int = Field(default=180, ge=1)
    # threshold: a new threshold for the weights in force; logistic: weights learned by a
    # logistic regression over the signals, and their threshold.
    risk_calibration_model: Literal["threshold", "logistic"] = "threshold"
    risk_calibration_schedule_id: str = "risk-calibration-daily"
    risk_calibration_every: timedelta = timedelta(days=1)

    # Classification rules (data-driven): thresholds the rules read
    bulk_quantity_threshold: int = 50
    bulk_value_threshold: str = "2000.00"

    # Waits and service levels given to every new order (workflow input), e.g.
    # ORDERFLOW_ORDER_POLICY='{"review_sla": "PT2H", "auto_warehouse": true}'
    order_policy: OrderPolicy = Field(default_factory=OrderPolicy)
    # Return window, send-back and inspection waits and refund rules of every new return
    # (workflow input), e.g. ORDERFLOW_RETURN_POLICY='{"window": "P14D"}'
    return_policy: ReturnPolicy = Field(default_factory=ReturnPolicy)
    # Run the outbox dispatcher (sends queued e-mails and notices) inside each worker.
    outbox_dispatch: bool = True
    outbox_interval_seconds: float = 1.0
    # A claimed row is the dispatcher's for this long; a crashed dispatcher's rows are
    # taken over by another after it.
    outbox_lease_seconds: float = Field(default=60.0, gt=0)
    # Failed sends retry with exponential backoff (base doubling up to max); after
    # `outbox_max_attempts` the row is `failed` and waits for an admin's retry.
    outbox_max_attempts: int = Field(default=8, ge=1)
    outbox_backoff_seconds: float = Field(default=5.0, ge=0)
    outbox_backoff_max_seconds: float = Field(default=3600.0, ge=0)
    outbox_batch_size: int = Field(default=50, ge=1, le=1000)

    # Outbound webhooks (workers/webhooks.py): each worker runs a dispatcher unless off.
    webhook_dispatch: bool = True
    webhook_interval_seconds: float = Field(default=1.0, gt=0)
    # A receiver that has not answered after the timeout failed this attempt; the lease must
    # outlast it, or another dispatcher could send the same event while one is on the wire.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    # Failed deliveries retry after backoff * 2^(attempt-1) (at most backoff_max) until they
    # are older than the max age, then they are dead-lettered and wait for an admin's retry.
    webhook_backoff_seconds: float = Field(default=5.0, ge=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, ge=0)
    webhook_max_age: timedelta = timedelta(hours=24)
    # Deliveries on the wire at once per dispatcher: a slow subscriber holds only its own.
    webhook_concurrency: int = Field(default=20, ge=1, le=500)
    # Encrypts subscriptions' signing secrets at rest. Unset: a development key, which
    # production refuses (orderflow/webhooks.py).
    webhook_secret_key: str | None = None

    # E-mail over SMTP. The embedded stack runs its own mail server on smtp_port unless
    # ORDERFLOW_SMTP_HOST points elsewhere.
    smtp_host: str | None = None
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # CA bundle (PEM) that signs the SMTP server's certificate, when it is not a public CA's
    # (e.g. a company relay); tls/starttls verify the server against it.
    smtp_ca_file: Path | None = None
    mail_from: str = "orderflow <orders@orderflow.local>"
    # The embedded mail server (simulators/mailserver.py): where it keeps what it receives,
    # and the HTTP port on which `orderflow mail` and the mailbox page read it.
    mail_simulator_host: str = "127.0.0.1"
    mail_simulator_http_port: int = 8025
    mailbox_url: str = "http://127.0.0.1:8025"

    # Customers: the language of mails and pages when the order names none, and the public
    # address of the API that customer mails link to (the order page).
    default_locale: str = "en"
    # Unset: http://localhost:<api_port>, right for the embedded stack on any port.
    public_url: str = ""

    # Worker tuning
    worker_max_concurrent_activities: int = 200
    worker_max_concurrent_local_activities: int = 200
    worker_max_cached_workflows: int = 2000
    # Workflow task polls in flight, and the share of them for the task queue itself (new
    # orders' first tasks) rather than this worker's sticky queue (orders under way): a
    # larger share serves placements sooner under load, later steps later.
    worker_workflow_task_polls: int = Field(default=5, ge=2, le=100)
    worker_nonsticky_to_sticky_poll_ratio: float = Field(default=0.6, gt=0, le=1)
    # off: workflow code runs unsandboxed, the cheapest per order (workers/order_worker.py
    # says what keeps it deterministic) | passthrough: the SDK sandbox's checks without its
    # re-import of the workflow modules for every run | sandbox: both, as the tests run it.
    worker_workflow_runner: Literal["sandbox", "passthrough", "off"] = "off"

    # Carrier simulator behaviour (simulators/carrier.py); POST /control changes it at run time.
    carrier_simulator_host: str = "127.0.0.1"
    # instant: all events at once | normal: spaced | slow: booking answers late |
    # fail: booking 503s N times per idempotency key | lose: IN_TRANSIT, then nothing.
    carrier_simulator_mode: Literal["instant", "normal", "slow", "fail", "lose"] = "normal"
    carrier_simulator_event_interval_seconds: float = Field(default=2.0, ge=0)
    carrier_simulator_slow_seconds: float = Field(default=3.0, ge=0)
    carrier_simulator_fail_times: int = Field(default=2, ge=0)
    # Webhook delivery: attempts per event, exponential backoff from base up to max.
    carrier_simulator_webhook_attempts: int = Field(default=8, ge=1)
    carrier_simulator_webhook_backoff_seconds: float = Field(default=0.2, ge=0)
    carrier_simulator_webhook_backoff_max_seconds: float = Field(default=5.0, ge=0)

    # Where the command line finds the API.
    api_url: str = "http://127.0.0.1:8000"

    # Shared live view (api/routes/stream.py, departments.py): a keep-alive comment on idle
    # event streams; a stream ends after stream_max_seconds (clients resume with
    # Last-Event-ID), so a restarting API is never held open by its listeners.
    stream_keepalive_seconds: float = Field(default=15.0, gt=0)
    stream_max_seconds: float = Field(default=900.0, gt=0)
    # How long a status left by an automatic step (RECEIVED, CLASSIFIED, APPROVED, RESERVED,
    # PACKED) may last before the order counts as stuck.
    stuck_automatic_after: timedelta = timedelta(minutes=10)
    # Queue SLAs of work that belongs to no single order's policy.
    purchase_request_sla: timedelta = timedelta(days=3)
    feedback_sla: timedelta = timedelta(days=1)
    # A mail given up on (outbox row `failed`) waits in customer service's queue this long.
    failed_mail_sla: timedelta = timedelta(hours=4)
    # A failed capture or refund waits in finance's queue this long; a dispute (chargeback)
    # this long, well inside the time a card scheme gives to answer one.
    payment_problem_sla: timedelta = timedelta(hours=8)
    # An order from a marketplace that could not be mapped, until customer service decides.
    channel_exception_sla: timedelta = timedelta(hours=4)
    payment_dispute_sla: timedelta = timedelta(days=3)
    # A return outside the automatic rules (REQUESTED) waits in customer service's queue
    # this long for its decision; the customer has no label until then.
    return_decision_sla: timedelta = timedelta(days=1)
    # The weekly KPI snapshot (workflows/kpi_snapshot.py): Temporal Schedule id and cron (UTC).
    kpi_schedule_id: str = "kpi-weekly"
    kpi_schedule_cron: str = "5 0 * * 1"
    # Improving the process: a process issue waits in its department's queue this long by
    # severity; `report --around` compares windows of process_change_window (shortened to
    # the time since the change) and warns below process_change_min_orders orders in one;
    # the weekly review pack's Temporal Schedule (workflows/process_review.py).
    process_issue_sla_high: timedelta = timedelta(days=1)
    process_issue_sla_medium: timedelta = timedelta(days=3)
    process_issue_sla_low: timedelta = timedelta(days=7)
    process_change_window: timedelta = timedelta(days=7)
    process_change_min_orders: int = Field(default=30, ge=1)
    process_review_schedule_id: str = "process-review-weekly"
    process_review_schedule_cron: str = "20 0 * * 1"
    # The replenishment run (workflows/replenishment.py): planning assumptions and its Temporal
    # Schedule, e.g. ORDERFLOW_REPLENISHMENT='{"service_level": 0.98, "lead_time_days": 5}'
    replenishment: ReplenishmentSettings = Field(default_factory=ReplenishmentSettings)

    # Abuse limits of the HTTP API (api/limits.py). Feedback tickets per order: beyond it a
    # new ticket is refused with 409 (a retry with a known request key still answers).
    feedback_tickets_per_order: int = Field(default=10, ge=1)
    # Requests per minute and burst per principal (role token, or the customer's order) and
    # action, counted by each API process in memory; beyond them 429 with Retry-After.
    # Placement is the storefront's machine traffic (and `orderflow load`): a high bound that
    # stops a runaway client, not a busy shop.
    rate_limit_place_per_minute: float = Field(default=12000.0, gt=0)
    rate_limit_place_burst: int = Field(default=1000, ge=1)
    rate_limit_feedback_per_minute: float = Field(default=20.0, gt=0)
    rate_limit_feedback_burst: int = Field(default=10, ge=1)
    rate_limit_cancel_per_minute: float = Field(default=30.0, gt=0)
    rate_limit_cancel_burst: int = Field(default=10, ge=1)
    # Open event streams per principal and per API process; beyond them 429.
    stream_max_per_principal: int = Field(default=5, ge=1)
    stream_max_total: int = Field(default=500, ge=1)

    # `orderflow up`: child processes it runs as workers (`--workers N`), and the port of
    # the first worker's metrics (Prometheus; the i-th worker of `up` uses port + i; 0: none).
    up_workers: int = Field(default=1, ge=1, le=64)
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # How often a worker reads the gauges of its metrics (outbox lag, queues) from PostgreSQL.
    metrics_refresh_seconds: float = Field(default=15.0, gt=0)
    # The window of the step latencies the workers export (receipt → each status).
    metrics_latency_window_seconds: float = Field(default=900.0, gt=0)
    # A bearer token that reads the API's `/metrics` in production and nothing else (for
    # Prometheus, instead of the admin token); unset: only the admin token reads them.
    metrics_token: str | None = None
    # Logs: `text` for people at a terminal, `json` (one object per line, with the order id
    # where there is one) for a log collector.
    log_format: Literal["text", "json"] = "text"
    # Traces (OpenTelemetry): off by default; `console` prints spans, `otlp` sends them to
    # ORDERFLOW_TRACING_OTLP_ENDPOINT (OTLP over HTTP, e.g. http://collector:4318/v1/traces;
    # unset: the exporter's own default or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
    tracing_exporter: Literal["none", "console", "otlp"] = "none"
    tracing_otlp_endpoint: str | None = None

    @model_validator(mode="after")
    def _running_stack_fallback(self) -> Settings:
        # A command in a second terminal beside `orderflow up` reaches that stack when no
        # server is named; `orderflow up` itself refuses to start beside a running one.
        unset = {
            name
            for name in ("database_url", "temporal_address", "api_url")
            if name not in self.model_fields_set
        }
        if not unset:
            return self
        from orderflow.stack_facts import running_stack_facts

        facts = running_stack_facts(self.state_dir)
        if facts is None:
            return self
        for name in unset:
            value = facts.get(name)
            if isinstance(value, str) and value:
                setattr(self, name, value)
        return self

    @model_validator(mode="after")
    def _public_url_from_port(self) -> Settings:
        if not self.public_url:
            self.public_url = f"http://localhost:{self.api_port}"
        return self

    @model_validator(mode="after")
    def _psp_webhook_url_from_port(self) -> Settings:
        if not self.psp_webhook_url:
            self.psp_webhook_url = f"http://127.0.0.1:{self.api_port}/payments/events"
        return self

    def token_for(self, role: str) -> str:
        """The token the command line uses to act in `role`."""
        if role in self.api_tokens:
            return self.api_tokens[role]
        if self.mode == "production":
            raise LookupError(f"no token configured for role {role!r} (ORDERFLOW_API_TOKENS)")
        return f"dev-{role}"

    def effective_tokens(self) -> dict[str, str]:
        """token -> role: configured tokens, plus `dev-<role>` outside production."""
        tokens = {token: role for role, token in self.api_tokens.items()}
        if self.mode != "production":
            tokens.update({f"dev-{role}": role for role in ROLES})
        return tokens

    def production_problems(self, carriers: Iterable[str] | None = None) -> list[str]:
        """What keeps these settings out of production, one line per setting by its
        environment variable; empty when production may start.

        `carriers` are the codes of the carriers the shop books, each needing a webhook
        secret; by default the ones `orderflow migrate` seeds into the carriers table.
        """
        problems: list[str] = []
        for field, env in PRODUCTION_SECRETS:
            default = type(self).model_fields[field].default
            problem = _secret_problem(
                env, getattr(self, field), minimum=MIN_SECRET_LENGTH, default=default
            )
            if problem:
                problems.append(problem)

        for role in ROLES:
            problem = _secret_problem(
                f"ORDERFLOW_API_TOKENS (role {role!r})",
                self.api_tokens.get(role),
                minimum=MIN_TOKEN_LENGTH,
                default=f"dev-{role}",
            )
            if problem:
                problems.append(problem)
        tokens = [token for token in self.api_tokens.values() if token]
        if len(set(tokens)) < len(tokens):
            # One token for two roles would act as whichever role happened to be listed last.
            problems.append("ORDERFLOW_API_TOKENS gives two roles the same token")
        if self.metrics_token is not None:
            problem = _secret_problem(
                "ORDERFLOW_METRICS_TOKEN",
                self.metrics_token,
                minimum=MIN_TOKEN_LENGTH,
                default=None,
            )
            if problem:
                problems.append(problem)
            elif self.metrics_token in tokens:
                problems.append("ORDERFLOW_METRICS_TOKEN is also a role's token")

        if carriers is None:
            from orderflow.demo_carriers import DEMO_CARRIERS

            carriers = [carrier.code for carrier in DEMO_CARRIERS]
        for code in sorted({*carriers, *self.carrier_webhook_secrets}):
            problem = _secret_problem(
                f"ORDERFLOW_CARRIER_WEBHOOK_SECRETS (carrier {code!r})",
                self.carrier_webhook_secrets.get(code),
                minimum=MIN_SECRET_LENGTH,
                default=f"dev-carrier-secret-{code}",
            )
            if problem:
                problems.append(problem)

        if self.webhook_secret_key:
            # Optional (a shop may not use webhooks), but never weak when given; unset, the
            # webhook routes refuse to store a secret in production.
            problem = _secret_problem(
                "ORDERFLOW_WEBHOOK_SECRET_KEY",
                self.webhook_secret_key,
                minimum=MIN_SECRET_LENGTH,
                default=None,
            )
            if problem:
                problems.append(problem)

        if not self.payload_keys:
            problems.append(
                "ORDERFLOW_PAYLOAD_KEYS is unset: workflow payloads would be encrypted with "
                "the fixed development key"
            )
        else:
            problems.extend(
                f"ORDERFLOW_PAYLOAD_KEYS (key {key_id!r}) is not the base64 of 32 bytes"
                for key_id, key in sorted(self.payload_keys.items())
                if not _is_aes256_key(key)
            )
            problems.extend(
                f"ORDERFLOW_PAYLOAD_KEYS (key {key_id!r}) is the development key"
                for key_id, key in sorted(self.payload_keys.items())
                if key == DEVELOPMENT_PAYLOAD_KEY
            )
            if not self.payload_key_id:
                problems.append("ORDERFLOW_PAYLOAD_KEY_ID is unset")
            elif self.payload_key_id not in self.payload_keys:
                problems.append(
                    f"ORDERFLOW_PAYLOAD_KEY_ID {self.payload_key_id!r} is not a key of "
                    "ORDERFLOW_PAYLOAD_KEYS"
                )
        return problems

    def require_safe_for_production(self, carriers: Iterable[str] | None = None) -> None:
        """In production mode, raise `UnsafeForProduction` naming every unsafe setting;
        in development mode, nothing (its defaults are what development runs on)."""
        if self.mode != "production":
            return
        problems = self.production_problems(carriers)
        if problems:
            raise UnsafeForProduction(problems)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
