"""The gallery: find and run the example scripts, draw their passes, write the index and README."""
