"""Training, evaluation and prediction on built data sets (TensorFlow lives here, never in pipeline/)."""
