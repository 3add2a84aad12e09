"""Hand-fused kernels for accelerators, each an alternative to an XLA path of the library that
computes the same equations (and is tested against it)."""
