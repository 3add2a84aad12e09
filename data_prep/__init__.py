"""Data preparation: the default corpus (music21's six collections -> MIDI) and `vrash-prep`
(MIDI files -> the `vrash_midi` TFRecords, stats.json, entropy.png). No jax; TensorFlow only
where the dataset is built. Each MIDI file is read by `vrash_jax.midi`, the rules the library
shares."""
