"""The order search attributes operators filter on in the Temporal Web UI (typed keys)."""

from temporalio.common import SearchAttributeKey

ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
ORDER_TYPE = SearchAttributeKey.for_keyword("OrderType")
DEPARTMENT = SearchAttributeKey.for_keyword("Department")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
RISK_SCORE = SearchAttributeKey.for_float("RiskScore")
FLAGGED = SearchAttributeKey.for_bool("Flagged")

ALL_KEYS = (ORDER_STATUS, ORDER_TYPE, DEPARTMENT, CUSTOMER_ID, RISK_SCORE, FLAGGED)
