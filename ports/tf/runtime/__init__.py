"""The hand-written TensorFlow runtime of the generated port: op shim, primitive twins, chex."""
