"""silva's benchmarks, run as `uv run --group bench python -m bench <name> [args]`: each module
with a `main(argv)` is a benchmark; the others are the helpers they share (common, peers,
tastes, family, recipe, speed_common, embedding_speed)."""
