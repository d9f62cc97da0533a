"""The boxes stage's COCO file: the split's images, one category `object`, its ground-truth
boxes as `annotations` (none for a split without) and the predicted boxes as `detections` in
COCO's results format, so `pycocotools` loads it as it is (docs/boxes.md, "Files")::

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    truth = COCO("boxes/test.coco.json")
    found = truth.loadRes(truth.dataset["detections"])
    evaluation = COCOeval(truth, found, "bbox")

Boxes are `[x, y, w, h]` in the original image's pixels with `w = x1 - x0 + 1`: a box covers the
pixels x0..x1 (the WSOL convention), so COCO's areas and IoUs are the benchmark's +1-pixel ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rpsloc import __version__
from rpsloc.datasets.records import ImageRecord

CATEGORY = {"id": 1, "name": "object", "supercategory": "object"}

#: One image's prediction: its record, boxes (k, 4) in original pixels, their scores and its
#: objectness.
Prediction = tuple[ImageRecord, np.ndarray, np.ndarray, float]


def coco_box(box: Sequence[int]) -> list[int]:
    """`[x, y, w, h]` of an inclusive `x0, y0, x1, y1` pixel box."""
    x0, y0, x1, y1 = (int(value) for value in box)
    return [x0, y0, x1 - x0 + 1, y1 - y0 + 1]


def coco_file(predictions: Sequence[Prediction], info: Mapping[str, Any]) -> dict[str, Any]:
    """The COCO dictionary of a split's predictions; image ids are 1-based positions in the
    split, `file_name` the rpsloc image id, and each image carries its `objectness`."""
    images, annotations, detections = [], [], []
    for index, (record, boxes, scores, objectness) in enumerate(predictions, start=1):
        images.append(
            {
                "id": index,
                "file_name": record.image_id,
                "path": str(record.path),
                "width": int(record.width),
                "height": int(record.height),
                "objectness": float(objectness),
            }
        )
        for box in record.boxes:
            bbox = coco_box(box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index,
                    "category_id": CATEGORY["id"],
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
        for box, score in zip(boxes, scores, strict=True):
            detections.append(
                {
                    "image_id": index,
                    "category_id": CATEGORY["id"],
                    "bbox": coco_box(box),
                    "score": float(score),
                }
            )
    return {
        "info": {
            "description": "rpsloc predicted boxes (docs/boxes.md)",
            "version": __version__,
            "boxes": "[x, y, w, h] in original pixels, w = x1 - x0 + 1",
            **info,
        },
        "images": images,
        "categories": [CATEGORY],
        "annotations": annotations,
        "detections": detections,
    }
