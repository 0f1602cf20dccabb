"""The name of every activity, in one place: all that workflows (and the process
definition) need to know of `activities/`, which registers its functions under these."""

from enum import StrEnum


class ActivityName(StrEnum):
    RECORD_ORDER = "record_order"
    CLASSIFY_ORDER = "classify_order"
    ASSESS_RISK = "assess_risk"
    ESCALATE_REVIEW = "escalate_review"
    RECORD_REVIEW_DECISION = "record_review_decision"
    RESERVE_STOCK = "reserve_stock"
    REMIND_BACKORDER = "remind_backorder"
    # Pre-orders (step 4): wait for the release, moved by purchasing, then go on
    HOLD_FOR_RELEASE = "hold_for_release"
    MOVE_RELEASE = "move_release"
    RELEASE_PRE_ORDER = "release_pre_order"
    OPEN_PICK_TASK = "open_pick_task"
    NOTIFY_PICK_OVERDUE = "notify_pick_overdue"
    RECORD_PICKED = "record_picked"
    RECORD_PACKED = "record_packed"
    BOOK_SHIPMENT = "book_shipment"
    RECORD_TRACKING = "record_tracking"
    FOLLOW_UP_DELIVERY = "follow_up_delivery"
    COMPLETE_ORDER = "complete_order"
    CANCEL_ORDER = "cancel_order"
    HOLD_SHIPMENT = "hold_shipment"
    OPEN_LOST_PARCEL_CASE = "open_lost_parcel_case"
    TAKE_REPLACEMENT_STOCK = "take_replacement_stock"
    REFUND_LOST_PARCEL = "refund_lost_parcel"
    # The order's payment at the PSP (activities/payments.py), regular activities
    CAPTURE_PAYMENT = "capture_payment"
    VOID_PAYMENT = "void_payment"
    REFUND_PAYMENT = "refund_payment"
    REAUTHORIZE_PAYMENT = "reauthorize_payment"
    REJECT_UNPROCESSABLE = "reject_unprocessable"
    RECORD_FEEDBACK = "record_feedback"
    RECORD_PRODUCT_REVIEW = "record_product_review"
    # The replenishment run (workflows/replenishment.py)
    LIST_REPLENISHMENT_SKUS = "list_replenishment_skus"
    PLAN_REPLENISHMENT = "plan_replenishment"
    APPLY_REPLENISHMENT = "apply_replenishment"
    # The weekly KPI snapshot (workflows/kpi_snapshot.py)
    STORE_KPI_SNAPSHOT = "store_kpi_snapshot"
    # The weekly process review pack (workflows/process_review.py)
    BUILD_PROCESS_REVIEW = "build_process_review"
    # The risk calibration (workflows/risk_calibration.py)
    CALIBRATE_RISK = "calibrate_risk"
    # The marketplaces' feeds (workflows/marketplace_poller.py) and the pushes to them
    FETCH_MARKETPLACE_ORDERS = "fetch_marketplace_orders"
    TAKE_MARKETPLACE_ORDER = "take_marketplace_order"
    ACKNOWLEDGE_MARKETPLACE_ORDER = "acknowledge_marketplace_order"
    PUSH_MARKETPLACE_SHIPMENT = "push_marketplace_shipment"
    PUSH_MARKETPLACE_CANCELLATION = "push_marketplace_cancellation"
    # Returns (workflows/returns.py): label, parcel back, inspection, refund
    ASK_RETURN_DECISION = "ask_return_decision"
    RECORD_RETURN_DECISION = "record_return_decision"
    BOOK_RETURN_LABEL = "book_return_label"
    RECORD_RETURN_TRACKING = "record_return_tracking"
    CLOSE_UNSENT_RETURN = "close_unsent_return"
    NOTIFY_RETURN_INSPECTION_OVERDUE = "notify_return_inspection_overdue"
    RECORD_RETURN_INSPECTION = "record_return_inspection"
    REFUND_RETURN = "refund_return"
    RECORD_EXCHANGE = "record_exchange"


# The type of the non-retryable error a local activity fails with when its data can never be
# processed (activities/failures.py): the order workflow rejects the order with the reason.
UNPROCESSABLE = "Unprocessable"
# The type of the non-retryable error of a payment operation the PSP refuses as sent
# (activities/payments.py): retrying cannot pass, finance takes it from its queue.
PAYMENT_REJECTED = "PaymentRejected"
