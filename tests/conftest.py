"""Test-wide set-up: eight CPU devices for data-parallel tests, quiet TensorFlow."""
import os

# Must happen before jax is imported anywhere in the test session.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
