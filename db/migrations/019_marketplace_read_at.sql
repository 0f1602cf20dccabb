-- When each marketplace's feed was last read without an error: its lag for people.
ALTER TABLE marketplace_feeds ADD COLUMN read_at timestamptz;
