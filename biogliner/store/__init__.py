"""The output store: Delta tables written by workers and committed by the driver (delta, output),
the maintained current state (current, refresh), SQL views (views, sql), maintenance and locks."""
