"""Analyses of recorded traces: the networkx graph, structure, paths, accumulation, health, diff, summary, modules."""
