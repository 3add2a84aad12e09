"""The XLA flags of the tests' processes, child processes included."""
import re

# The tests' programs are tiny and compiled by the hundred, so LLVM's optimizations cost far more
# than they save: without them the tiny sweep took 93-96 s instead of 121-126 s, and the whole
# suite 879 s instead of 1151 s, on a 2-core CPU (2026-12-04).
FAST_COMPILE = '--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true'
DEVICE_COUNT = re.compile(r'\s*--xla_force_host_platform_device_count=\d+')


def with_devices(flags: str, devices: int | None) -> str:
  """FLAGS with the CPU made `devices` devices (None: as many as it has), its other flags kept."""
  rest = DEVICE_COUNT.sub('', flags).strip()
  return ' '.join(f for f in (f'--xla_force_host_platform_device_count={devices}' if devices else '', rest) if f)
