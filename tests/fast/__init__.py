"""The fast workflow tier: `OrderWorkflow` on the time-skipping server with stub activities."""
