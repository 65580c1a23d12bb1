"""Turn a folder of audio files into a data set of labelled spectrogram slices.

This package never imports TensorFlow, so build workers stay light and start fast.
"""
