"""Debug tools that drive the builder through its public knobs only: `debug tactics` (algorithm selector),
`debug precision` (layer precisions), `debug reduce` (subgraph extraction) and `debug build` (repeated builds)."""
