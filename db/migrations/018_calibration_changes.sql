-- A risk model version the scheduled calibration puts live is a process change too.
ALTER TABLE process_changes DROP CONSTRAINT process_changes_source_check;
ALTER TABLE process_changes ADD CONSTRAINT process_changes_source_check
    CHECK (source IN ('configuration', 'operator', 'calibration'));
