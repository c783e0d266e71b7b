-- Raw inserts carry a deduplication token (source partition and offsets): a batch replayed
-- after a crash inserts nothing it had inserted before, so raw rows are exact without
-- FINAL. The tables remember the tokens of their most recent blocks.
ALTER TABLE {db}.voice_events MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE {db}.interaction_events MODIFY SETTING non_replicated_deduplication_window = 10000
