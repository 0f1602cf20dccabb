"""What counts as a change to how the process runs, and which steps each one touches (pure).

The process settings are flattened to dotted names with JSON values (`order_policy.review_sla`
→ "PT4H", `risk_weights.new_customer` → 20.0, `carriers.dhl.active` → true), so two starts'
settings compare name by name and a change reads as "what: old → new".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orderflow.settings import Settings

# Dotted-name prefixes and the steps whose figures a change under them should move; the
# first that matches wins. Names under no prefix are not part of the process.
STEPS_OF_PREFIX: tuple[tuple[str, tuple[int, ...]], ...] = (
    # The customer's product review (step 8), before the risk review's fields.
    ("order_policy.review_window", (8,)),
    ("order_policy.review_", (3,)),
    ("order_policy.backorder_", (4,)),
    ("order_policy.pick_sla", (5,)),
    ("order_policy.auto_", (5,)),
    ("order_policy.delivery_grace", (7,)),
    ("order_policy.followup_", (7,)),
    ("order_policy.quiet_period", (8,)),
    # Renewed while the order waits anywhere before the capture at shipment.
    ("order_policy.authorization_renewal_margin", (3, 4, 5, 6)),
    ("risk_", (3,)),
    ("bulk_", (2,)),
    ("replenishment.", (4,)),
    ("carriers.", (6, 7)),
)
# Policy fields that change how a workflow is run, not the process people see.
_TECHNICAL = frozenset({"continue_as_new_history_length"})
# Replenishment fields that say when it runs, not what it plans.
_SCHEDULING = frozenset({"schedule_id", "schedule_cron", "batch_size"})


@dataclass(frozen=True)
class SettingChange:
    setting: str
    steps: tuple[int, ...]
    old: Any
    new: Any


def steps_of(setting: str) -> tuple[int, ...]:
    """The steps a setting's change touches; () for a name outside the process settings."""
    return next((steps for prefix, steps in STEPS_OF_PREFIX if setting.startswith(prefix)), ())


def process_settings(
    settings: Settings, carriers: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The settings that shape the process, flat, with JSON values; `carriers` are the
    carrier table's rows by code (what booking reads), JSON-ready."""
    flat: dict[str, Any] = {}
    policy = settings.order_policy.model_dump(mode="json")
    for name, value in policy.items():
        if name not in _TECHNICAL:
            flat[f"order_policy.{name}"] = value
    flat["risk_flag_threshold"] = settings.risk_flag_threshold
    for signal, weight in settings.risk_weights.items():
        flat[f"risk_weights.{signal}"] = weight
    # Their entries are customers' data: the change log says how many, not who.
    flat["risk_block_list_emails.entries"] = len(settings.risk_block_list_emails)
    flat["risk_block_list_postal_codes.entries"] = len(settings.risk_block_list_postal_codes)
    flat["bulk_quantity_threshold"] = settings.bulk_quantity_threshold
    flat["bulk_value_threshold"] = settings.bulk_value_threshold
    for name, value in settings.replenishment.model_dump(mode="json").items():
        if name not in _SCHEDULING:
            flat[f"replenishment.{name}"] = value
    for code, row in (carriers or {}).items():
        for name, value in row.items():
            flat[f"carriers.{code}.{name}"] = value
    return dict(sorted(flat.items()))


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[SettingChange]:
    """Every setting whose value differs (None where a side lacks it), by name."""
    return [
        SettingChange(name, steps_of(name), old.get(name), new.get(name))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]
