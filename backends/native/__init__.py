"""mrc's own ML pieces (datasets, the torch MLP, its trainer, metrics, lineage), used by several backends."""
