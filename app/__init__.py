"""The top floor: the command line and its commands, the embedded stack runner, the KPI
report, the process handbook and the demo data generators. Everything here may import
everything below; nothing below imports this."""
