"""The demo origin shipped with the project: something real for edges and benchmarks to sit in front of."""
