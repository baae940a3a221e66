"""The gradtrace command line: a thin click layer over the tracer library."""
