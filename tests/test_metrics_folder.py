"""The benchmark's evaluator for a folder of score maps (METHOD.md section 3).

Metadata folders are built in tmp_path from real WSOL metadata lines in shared/ (ids, sizes,
boxes, OpenImages masks); score maps are synthetic, named `<image_id>.npy` as the benchmark does.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from rpsloc.datasets.wsol import read_wsol_metadata
from rpsloc.errors import InputError
from rpsloc.masks import benchmark_mask
from rpsloc.metrics.folder import evaluate_scoremap_folder


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write_split(folder: Path, ids: list[str], sizes: list[str], localization: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "image_ids.txt").write_text("\n".join(ids))
    (folder / "class_labels.txt").write_text("\n".join(f"{i},0" for i in ids))
    (folder / "image_sizes.txt").write_text("\n".join(sizes))
    (folder / "localization.txt").write_text("\n".join(localization))
    return folder


def _box_split(source: Path, target: Path, n: int) -> tuple[Path, dict[str, list[list[int]]]]:
    """The first n images of a real box split, and their boxes resized to 224 x 224 (floor)."""
    ids = _lines(source / "image_ids.txt")[:n]
    sizes = [line for line in _lines(source / "image_sizes.txt") if line.split(",")[0] in ids]
    boxes = [line for line in _lines(source / "localization.txt") if line.split(",")[0] in ids]
    size_of = {line.split(",")[0]: [int(v) for v in line.split(",")[1:]] for line in sizes}
    resized: dict[str, list[list[int]]] = {}
    for line in boxes:
        image_id, *coordinates = line.split(",")
        width, height = size_of[image_id]
        x0, y0, x1, y1 = (int(v) for v in coordinates)
        resized.setdefault(image_id, []).append(
            [x0 * 224 // width, y0 * 224 // height, x1 * 224 // width, y1 * 224 // height]
        )
    return _write_split(target, ids, sizes, boxes), resized


def _save_map(scoremap_dir: Path, image_id: str, score_map: np.ndarray) -> Path:
    path = scoremap_dir / f"{image_id}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, score_map)
    return path


def _box_map(box: list[int]) -> np.ndarray:
    """A map whose blob covers columns x0..x1-1 and rows y0..y1-1: its box is exactly (x0..y1)."""
    score_map = np.zeros((224, 224))
    x0, y0, x1, y1 = box
    score_map[y0:y1, x0:x1] = 1.0
    return score_map


@pytest.fixture
def cub_split(wsol_metadata, tmp_path) -> tuple[Path, Path, dict[str, list[list[int]]]]:
    """Four CUB test images (real sizes and boxes) with perfect score maps."""
    metadata, boxes = _box_split(wsol_metadata / "CUB" / "test", tmp_path / "meta", 4)
    scoremaps = tmp_path / "maps"
    for image_id, image_boxes in boxes.items():
        _save_map(scoremaps, image_id, _box_map(image_boxes[0]))
    return metadata, scoremaps, boxes


def test_perfect_box_maps_score_100_everywhere(cub_split):
    metadata, scoremaps, _ = cub_split
    result = evaluate_scoremap_folder(metadata, scoremaps)
    assert result["n_images"] == 4
    assert result["max_box_acc"] == {"30": 100.0, "50": 100.0, "70": 100.0}
    assert result["max_box_acc_v2"] == 100.0
    assert result["best_threshold"] == {"30": 0.0, "50": 0.0, "70": 0.0}
    assert "pxap" not in result


def test_the_result_is_json_serialisable_and_records_the_settings(cub_split):
    metadata, scoremaps, _ = cub_split
    result = evaluate_scoremap_folder(metadata, scoremaps, contours="largest", interval=0.05)
    assert json.loads(json.dumps(result)) == result
    assert (result["contours"], result["interval"]) == ("largest", 0.05)


def test_half_of_the_maps_empty_gives_50_percent(cub_split):
    metadata, scoremaps, boxes = cub_split
    for image_id in list(boxes)[:2]:
        _save_map(scoremaps, image_id, np.zeros((224, 224)))
    result = evaluate_scoremap_folder(metadata, scoremaps)
    assert result["max_box_acc"] == {"30": 50.0, "50": 50.0, "70": 50.0}


def test_boxes_are_resized_to_224_by_truncation_x_by_width_and_y_by_height(tmp_path):
    # 300 wide, 600 tall: (4, 8, 4, 8) -> (2.99, 2.99, ...) -> truncated (2, 2, 2, 2), a pixel
    # inside the map's box (0, 0, 2, 2): IoU 1/9. Rounding gives (3, 3, 3, 3) and swapped axes
    # (1, 5, 1, 5), both outside it: IoU 0.
    metadata = _write_split(tmp_path / "meta", ["a.jpg"], ["a.jpg,300,600"], ["a.jpg,4,8,4,8"])
    score_map = np.zeros((224, 224))
    score_map[0:2, 0:2] = 1.0
    _save_map(tmp_path / "maps", "a.jpg", score_map)
    result = evaluate_scoremap_folder(metadata, tmp_path / "maps", iou_thresholds=(10, 12))
    assert result["max_box_acc"] == {"10": 100.0, "12": 0.0}


def test_an_image_with_two_gt_boxes_is_right_when_either_is_found(wsol_metadata, tmp_path):
    # The second ILSVRC test image has two boxes; each map matches the second box of its image.
    metadata, boxes = _box_split(wsol_metadata / "ILSVRC" / "test", tmp_path / "meta", 3)
    assert [len(b) for b in boxes.values()] == [1, 2, 1]
    for image_id, image_boxes in boxes.items():
        _save_map(tmp_path / "maps", image_id, _box_map(image_boxes[-1]))
    result = evaluate_scoremap_folder(metadata, tmp_path / "maps")
    assert result["max_box_acc_v2"] == 100.0


@pytest.fixture
def openimages_split(wsol_metadata, tmp_path) -> tuple[Path, Path]:
    """The five OpenImages val images whose masks are in shared/, as a metadata folder."""
    mask_root = wsol_metadata / "OpenImages" / "test_masks"
    source = wsol_metadata / "OpenImages" / "val"
    localization = [
        line
        for line in _lines(source / "localization.txt")
        if (mask_root / line.split(",")[1]).is_file()
    ]
    ids = sorted({line.split(",")[0] for line in localization})
    return _write_split(tmp_path / "meta", ids, [], localization), mask_root


def _gt_masks(metadata: Path, mask_root: Path) -> dict[str, np.ndarray]:
    parsed = read_wsol_metadata(metadata, labels=False, mask_localization=False)
    masks = {}
    for image_id in parsed.ids:
        image = parsed.image(image_id, mask_root)
        masks[image_id] = benchmark_mask(image.mask_paths, image.ignore_path, (224, 224))
    return masks


def test_the_gt_masks_as_score_maps_give_pxap_and_piou_100(openimages_split, tmp_path):
    metadata, mask_root = openimages_split
    for image_id, mask in _gt_masks(metadata, mask_root).items():
        _save_map(tmp_path / "maps", image_id, (mask == 1).astype(np.float64))
    result = evaluate_scoremap_folder(metadata, tmp_path / "maps", mask_root=mask_root)
    assert result["n_images"] == 5
    assert (result["pxap"], result["piou"]) == (100.0, 100.0)
    assert "max_box_acc" not in result


def test_constant_maps_give_pxap_and_piou_equal_to_the_pooled_foreground_fraction(
    openimages_split, tmp_path
):
    metadata, mask_root = openimages_split
    foreground = counted = 0
    for image_id, mask in _gt_masks(metadata, mask_root).items():
        _save_map(tmp_path / "maps", image_id, np.full((224, 224), 0.5))
        foreground += int((mask == 1).sum())
        counted += int((mask != 255).sum())
    result = evaluate_scoremap_folder(metadata, tmp_path / "maps", mask_root=mask_root)
    # The only operating point with predictions takes every counted pixel: recall 1, precision
    # and IoU both foreground / counted.
    assert result["pxap"] == pytest.approx(100 * foreground / counted, rel=1e-12)
    assert result["piou"] == pytest.approx(100 * foreground / counted, rel=1e-12)


def test_a_mask_split_without_mask_root_is_an_error(openimages_split, tmp_path):
    metadata, _ = openimages_split
    with pytest.raises(InputError, match="mask_root"):
        evaluate_scoremap_folder(metadata, tmp_path / "maps")


@pytest.mark.parametrize(
    "split", ["CUB/train", "CUB/val", "CUB/test", "ILSVRC/val", "ILSVRC/test", "OpenImages/val"]
)
def test_every_shared_metadata_split_parses_with_one_localization_per_image(wsol_metadata, split):
    parsed = read_wsol_metadata(wsol_metadata / split, labels=False, mask_localization=False)
    n_ids = len(_lines(wsol_metadata / split / "image_ids.txt"))
    assert len(parsed.ids) == n_ids
    assert set(parsed.boxes) | set(parsed.masks) == set(parsed.ids)


# ---------------------------------------------------------------------------------------------
# Errors name the image and the file


def test_a_missing_score_map_is_an_error_naming_the_image_and_file(cub_split):
    metadata, scoremaps, boxes = cub_split
    image_id = list(boxes)[2]
    (scoremaps / f"{image_id}.npy").unlink()
    with pytest.raises(InputError, match="file not found") as error:
        evaluate_scoremap_folder(metadata, scoremaps)
    assert image_id in str(error.value) and f"{image_id}.npy" in str(error.value)


@pytest.mark.parametrize(
    ("bad_map", "message"),
    [
        (np.full((224, 224), np.nan), "NaN"),
        (np.full((224, 224), 1.5), r"\[0, 1\]"),
        (np.full((224, 224), -0.1), r"\[0, 1\]"),
        (np.zeros((112, 112)), r"shape \(224, 224\)"),
        (np.full((224, 224), "a"), "real-valued"),
    ],
)
def test_an_invalid_score_map_is_an_error_naming_the_image(cub_split, bad_map, message):
    metadata, scoremaps, boxes = cub_split
    image_id = list(boxes)[1]
    _save_map(scoremaps, image_id, bad_map)
    with pytest.raises(InputError, match=message) as error:
        evaluate_scoremap_folder(metadata, scoremaps)
    assert repr(image_id) in str(error.value)


def test_an_empty_split_is_an_error(tmp_path):
    metadata = _write_split(tmp_path / "meta", [], [], [])
    with pytest.raises(InputError, match="empty"):
        evaluate_scoremap_folder(metadata, tmp_path / "maps")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{id},1,2,3", "found 4 fields"),
        ("{id},1,2,x,4", "integer x1"),
        ("{id},5,2,3,4", "x1 < x0"),
        ("unknown.jpg,1,2,3,4", "is not in .*image_ids.txt"),
    ],
)
def test_a_malformed_localization_line_is_an_error_naming_file_and_line(cub_split, line, message):
    metadata, scoremaps, boxes = cub_split
    lines = _lines(metadata / "localization.txt")
    lines.insert(2, line.format(id=list(boxes)[0]))
    (metadata / "localization.txt").write_text("\n".join(lines))
    with pytest.raises(InputError, match=f"localization.txt, line 3: .*{message}"):
        evaluate_scoremap_folder(metadata, scoremaps)


def test_a_malformed_size_line_is_an_error_naming_file_and_line(cub_split):
    metadata, scoremaps, _ = cub_split
    lines = _lines(metadata / "image_sizes.txt")
    lines[1] = lines[1].rsplit(",", 1)[0]
    (metadata / "image_sizes.txt").write_text("\n".join(lines))
    with pytest.raises(InputError, match="image_sizes.txt, line 2: expected 'id,width,height'"):
        evaluate_scoremap_folder(metadata, scoremaps)


def test_an_image_without_a_box_is_an_error_naming_it(cub_split):
    metadata, scoremaps, boxes = cub_split
    last = list(boxes)[-1]
    lines = [ln for ln in _lines(metadata / "localization.txt") if not ln.startswith(last + ",")]
    (metadata / "localization.txt").write_text("\n".join(lines))
    with pytest.raises(InputError, match=f"localization.txt: no line for image id '{last}'"):
        evaluate_scoremap_folder(metadata, scoremaps)


def test_an_unknown_contour_mode_is_an_error(cub_split):
    metadata, scoremaps, _ = cub_split
    with pytest.raises(InputError, match="contours"):
        evaluate_scoremap_folder(metadata, scoremaps, contours="all")
