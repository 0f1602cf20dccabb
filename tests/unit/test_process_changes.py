"""What counts as a process change: the process settings flattened to dotted names, the
steps each name touches, and the differences between two starts' settings."""

from __future__ import annotations

from datetime import timedelta

from orderflow.models import OrderPolicy
from orderflow.settings import Settings
from policies.process_changes import SettingChange, differences, process_settings, steps_of


def test_each_setting_touches_its_steps() -> None:
    assert steps_of("order_policy.review_sla") == (3,)
    assert steps_of("order_policy.review_deadline") == (3,)
    assert steps_of("order_policy.review_window") == (8,), "the customer's review, not risk's"
    assert steps_of("order_policy.pick_sla") == (5,)
    assert steps_of("order_policy.followup_interval") == (7,)
    assert steps_of("risk_weights.new_customer") == (3,)
    assert steps_of("risk_flag_threshold") == (3,)
    assert steps_of("bulk_value_threshold") == (2,)
    assert steps_of("replenishment.service_level") == (4,)
    assert steps_of("carriers.dhl.active") == (6, 7)
    assert steps_of("warehouse.packing_bench") == ()


def test_process_settings_are_flat_json_values() -> None:
    settings = Settings(
        order_policy=OrderPolicy(review_sla=timedelta(hours=2)),
        risk_weights={"new_customer": 25.0},
        risk_block_list_emails=["a@example.com", "b@example.com"],
    )
    flat = process_settings(settings, {"dhl": {"active": True, "max_weight_kg": "31.500"}})
    assert flat["order_policy.review_sla"] == "PT2H"
    assert flat["risk_weights.new_customer"] == 25.0
    assert flat["risk_flag_threshold"] == 50.0
    # Customers' data stays out of the change log: only how many entries there are.
    assert flat["risk_block_list_emails.entries"] == 2
    assert "a@example.com" not in repr(flat)
    assert flat["carriers.dhl.active"] is True
    assert flat["replenishment.service_level"] == settings.replenishment.service_level
    assert "replenishment.schedule_cron" not in flat
    assert "order_policy.continue_as_new_history_length" not in flat
    assert list(flat) == sorted(flat)


def test_differences_name_old_and_new_values() -> None:
    before = process_settings(Settings())
    after = process_settings(
        Settings(
            order_policy=OrderPolicy(review_sla=timedelta(hours=2)),
            risk_weights={"new_customer": 25.0},
        )
    )
    assert differences(before, before) == []
    assert differences(before, after) == [
        SettingChange("order_policy.review_sla", (3,), "PT4H", "PT2H"),
        SettingChange("risk_weights.new_customer", (3,), None, 25.0),
    ]
