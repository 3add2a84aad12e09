"""vrash_jax: LM, VAE and VRASH melody models (Tikhonov & Yamshchikov, 2017), and a Transformer LM
and VRASH beside them, in JAX/Flax.

Importing the package is cheap: submodules load jax, tensorflow or pretty_midi only when used,
so `data_prep` can share `vrash_jax.notes` without pulling in an accelerator runtime.
"""
__version__ = '0.1.0'  # the one source: pyproject.toml reads it

__all__ = ['Melodist']


def __getattr__(name: str):
  if name == 'Melodist':  # loads jax only when asked for
    from vrash_jax.melodist import Melodist
    return Melodist
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
