"""Image ops: classification, detection, segmentation, pose and depth."""

from __future__ import annotations

from ..enums import OpType
from .base import OpsBase, R


class ImageMixin(OpsBase[R]):
    """Image ops on an encoded image (JPEG, PNG, ...).

    As in vAccel, image ops take no resource argument: an inference plugin (onnx,
    tflite) runs the latest MODEL resource registered with the session. The noop
    plugin returns vAccel's dummy results. Result images are PNGs written in the
    session's run directory (`Session.rundir`), which goes when the session closes;
    through an agent they come back by value into the local session's run directory.

    Examples:
        ```python
        from vaccel import Resource, ResourceType, Session

        with Session() as s:  # VACCEL_PLUGINS=onnx (or tflite)
            s.register_resource(Resource(["digits.onnx", "digits.txt"], ResourceType.MODEL))
            tag, _ = s.classify(open("digit.png", "rb").read())
            print(tag)  # three (0.97)
        ```
    """

    def classify(self, image: bytes) -> R:
        """Classify an image.

        Args:
            image: the encoded image (JPEG, PNG, ... as bytes), decoded by the plugin.

        Returns:
            (tag, image name): the tag starts with the top label and its score
            (`three (0.97)`); the noop plugin gives vAccel's dummy tag.

        Raises:
            BadArgumentError: `image` is not an image the plugin can decode, or the
                registered model does not fit the op.
            NotSupportedError: no loaded plugin implements it, or none has a model
                for it (register a MODEL resource first).

        Examples:
            >>> noop_session.classify(b"...")
            ('This is a dummy classification tag!', 'This is a dummy imgname!')
        """
        return self._op(OpType.IMAGE_CLASSIFY, image)

    def detect(self, image: bytes) -> R:
        """Detect objects; draw their boxes and labels.

        Args:
            image: the encoded image (JPEG, PNG, ... as bytes), decoded by the plugin.

        Returns:
            The path of a PNG with the boxes and labels drawn, in the session's run
            directory; its numbers (as JSON in a `vaccel` text chunk) are read by
            `vaccel.plugins.imaging.results.read_findings`.

        Raises:
            BadArgumentError: `image` is not an image the plugin can decode, or the
                registered model does not fit the op.
            NotSupportedError: no loaded plugin implements it, or none has a model
                for it (register a MODEL resource first).

        Examples:
            ```python
            path = s.detect(open("photo.png", "rb").read())  # s: a Session with a model
            ```
        """
        return self._op(OpType.IMAGE_DETECT, image)

    def segment(self, image: bytes) -> R:
        """Segment an image: the foreground mask or the class of each pixel.

        Args:
            image: the encoded image (JPEG, PNG, ... as bytes), decoded by the plugin.

        Returns:
            The path of a PNG with the mask, in the session's run directory; its
            numbers (as JSON in a `vaccel` text chunk) are read by
            `vaccel.plugins.imaging.results.read_findings`.

        Raises:
            BadArgumentError: `image` is not an image the plugin can decode, or the
                registered model does not fit the op.
            NotSupportedError: no loaded plugin implements it, or none has a model
                for it (register a MODEL resource first).

        Examples:
            ```python
            path = s.segment(open("photo.png", "rb").read())  # s: a Session with a model
            ```
        """
        return self._op(OpType.IMAGE_SEGMENT, image)

    def pose(self, image: bytes) -> R:
        """Estimate a pose: keypoints drawn on the image.

        Args:
            image: the encoded image (JPEG, PNG, ... as bytes), decoded by the plugin.

        Returns:
            The path of a PNG with the keypoints drawn, in the session's run directory; its
            numbers (as JSON in a `vaccel` text chunk) are read by
            `vaccel.plugins.imaging.results.read_findings`.

        Raises:
            BadArgumentError: `image` is not an image the plugin can decode, or the
                registered model does not fit the op.
            NotSupportedError: no loaded plugin implements it, or none has a model
                for it (register a MODEL resource first).

        Examples:
            ```python
            path = s.pose(open("photo.png", "rb").read())  # s: a Session with a model
            ```
        """
        return self._op(OpType.IMAGE_POSE, image)

    def depth(self, image: bytes) -> R:
        """Estimate depth: a depth map of the image.

        Args:
            image: the encoded image (JPEG, PNG, ... as bytes), decoded by the plugin.

        Returns:
            The path of a PNG with the depth map, in the session's run directory; its
            numbers (as JSON in a `vaccel` text chunk) are read by
            `vaccel.plugins.imaging.results.read_findings`.

        Raises:
            BadArgumentError: `image` is not an image the plugin can decode, or the
                registered model does not fit the op.
            NotSupportedError: no loaded plugin implements it, or none has a model
                for it (register a MODEL resource first).

        Examples:
            ```python
            path = s.depth(open("photo.png", "rb").read())  # s: a Session with a model
            ```
        """
        return self._op(OpType.IMAGE_DEPTH, image)
