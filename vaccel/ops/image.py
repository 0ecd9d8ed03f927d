"""Image ops: classification, detection, segmentation, pose and depth."""

from __future__ import annotations

from ..enums import OpType
from .base import OpsBase, R


class ImageMixin(OpsBase[R]):
    """Image ops on an encoded image (JPEG, PNG, ...), with a MODEL resource where needed."""

    def classify(self, image: bytes) -> R:
        """Classify an image; returns (tag, image name): the tag starts with the top label.

        Example: `tag, _ = session.classify(open("cat.jpg", "rb").read())`.
        """
        return self._op(OpType.IMAGE_CLASSIFY, image)

    def detect(self, image: bytes) -> R:
        """Detect objects; returns the path of an image with the boxes drawn."""
        return self._op(OpType.IMAGE_DETECT, image)

    def segment(self, image: bytes) -> R:
        """Segment an image; returns the path of the mask image."""
        return self._op(OpType.IMAGE_SEGMENT, image)

    def pose(self, image: bytes) -> R:
        """Estimate poses; returns the path of an image with the keypoints drawn."""
        return self._op(OpType.IMAGE_POSE, image)

    def depth(self, image: bytes) -> R:
        """Estimate depth; returns the path of the depth-map image."""
        return self._op(OpType.IMAGE_DEPTH, image)
