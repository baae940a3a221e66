"""The optional native recorder: the C++ per-node hooks and tensor table, compiled on the user's machine."""
