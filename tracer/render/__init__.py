"""Drawing traces: options, DOT text built apart from the Graphviz call, pictures, per-step pages and charts."""
