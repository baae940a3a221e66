"""Everything that touches autograd: the engine interception, per-node hooks, tensor summaries, names, module tags."""
