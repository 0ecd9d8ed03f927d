"""What the inference plugins share: models as MODEL resources, images in, images out.

- `backend`: the `Backend` protocol a framework wrapper implements (inputs, outputs, run).
- `config`: `preprocess.json`, the optional file of a model resource that says how to
  feed and read the model (input size, layout, mean and std, channel order, thresholds).
- `resources`: which files of a MODEL resource are the model, its labels and its config.
- `state`: the models registered with each session and what a plugin loaded of them.
- `decode` and `preprocess`: an image's bytes -> the model's input tensor (Pillow).
- `heads`: a model's outputs -> classes, boxes, masks, keypoints, depth.
- `anchors`: SSD anchor decoding and non-maximum suppression (MediaPipe-style detectors).
- `draw` and `results`: the result image, written into the session's run directory.
- `ops`: classify, detect, segment, pose and depth written once over any `Backend`.
- `base`: `InferencePlugin`, the plugin base class that tracks a session's models.
"""
