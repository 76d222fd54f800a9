"""File formats the trainer reads and writes: safetensors, ONNX, checkpoint directories, TF.js."""
