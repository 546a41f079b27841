//! Examples and benchmarks for kstreams live in `examples/` and `benches/`.
