"""MIDI files -> normalized monophonic tracks (paper Sec. 2).

Data preparation (`data_prep`) and `Melodist.encode` read MIDI through these modules, so a melody
a user encodes is normalized exactly like the training data. numpy and pretty_midi only: no jax,
no TensorFlow.

* `tracks`: bytes -> one monophonic track per instrument (header checks, the monophony rule).
* `normalize`: transposition and pause normalization, one function per rule.
* `convert`: the whole chain for one file, with its knobs (`TrackRules`).
"""
