"""orderflow: every order of an online retailer as a durable Temporal workflow."""
