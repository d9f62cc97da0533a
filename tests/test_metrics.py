"""BoxAcc, MaxBoxAcc(V2), PxAP and pIoU (METHOD.md section 3), on hand-built maps and on the
benchmark's own OpenImages masks; a split with masks and no boxes, and one without any ground
truth."""

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from rpsloc import paths
from rpsloc.datasets.records import read_manifest
from rpsloc.errors import InputError
from rpsloc.masks import benchmark_mask
from rpsloc.metrics import evaluate_activations, evaluate_split
from rpsloc.metrics.accumulators import BoxAccuracy, PixelPrecisionRecall
from rpsloc.readers import BOX_ACCURACY_COLUMNS, read_maps

BENCHMARK_THRESHOLDS = np.arange(0, 1, 0.01)


@pytest.fixture(scope="module")
def shared(wsol_metadata) -> Path:
    """../shared beside the checkout (conftest's fixture fails loudly when it is missing)."""
    return wsol_metadata.parent


# ---------------------------------------------------------------------------------------------
# BoxAccuracy


@pytest.fixture
def blob_on_background() -> np.ndarray:
    """10 x 10 map: 1.0 on rows 2..5, columns 3..6; 0.2 elsewhere.

    At tau = 0 every pixel is foreground: box (0,0,9,9). At tau = 0.5 only the blob: (3,2,7,6).
    """
    score_map = np.full((10, 10), 0.2)
    score_map[2:6, 3:7] = 1.0
    return score_map


@pytest.fixture
def three_images(blob_on_background) -> BoxAccuracy:
    """Best IoUs at tau = (0, 0.5): image 1 (0.25, 1), image 2 (1, 0.25), image 3 (0.35, 5/7)."""
    accuracy = BoxAccuracy(np.arange(0, 1, 0.5), iou_thresholds=(30, 50, 70))
    accuracy.add(blob_on_background, np.array([[3, 2, 7, 6]]))
    accuracy.add(blob_on_background, np.array([[0, 0, 9, 9]]))
    accuracy.add(blob_on_background, np.array([[3, 2, 7, 8]]))
    return accuracy


def test_box_accuracy_keeps_each_images_best_iou_per_threshold(three_images):
    # Image 3: gt (3,2,7,8) has area 35; with (0,0,9,9): 35/100; with (3,2,7,6): 25/35.
    expected = [[0.25, 1.0], [1.0, 0.25], [0.35, 25 / 35]]
    assert three_images.n_images == 3
    np.testing.assert_allclose(three_images.best_ious, expected, rtol=0, atol=1e-15)


def test_box_acc_is_the_percentage_of_images_at_or_above_each_iou_threshold(three_images):
    expected = [[200 / 3, 200 / 3], [100 / 3, 200 / 3], [100 / 3, 200 / 3]]
    np.testing.assert_allclose(three_images.box_acc(), expected, rtol=1e-12)


def test_max_box_acc_is_the_maximum_over_thresholds(three_images):
    assert three_images.max_box_acc() == pytest.approx({30: 200 / 3, 50: 200 / 3, 70: 200 / 3})


def test_best_threshold_is_the_first_threshold_reaching_the_maximum(three_images):
    # d = 30 ties at tau = 0 and 0.5: the first one wins.
    assert three_images.best_thresholds() == {30: 0.0, 50: 0.5, 70: 0.5}


def test_max_box_acc_v2_is_the_mean_over_iou_thresholds(blob_on_background):
    accuracy = BoxAccuracy(np.arange(0, 1, 0.5), iou_thresholds=(30, 50, 70))
    accuracy.add(blob_on_background, np.array([[3, 2, 7, 6]]))  # IoU (0.25, 1)
    accuracy.add(blob_on_background, np.array([[0, 0, 4, 4]]))  # IoU (0.25, 6/44)
    # MaxBoxAcc: 30 -> 50, 50 -> 50, 70 -> 50 (both at tau = 0.5); d = 20 would also count 0.25.
    assert accuracy.max_box_acc_v2() == pytest.approx(50.0)
    low = BoxAccuracy(np.arange(0, 1, 0.5), iou_thresholds=(20, 50))
    low.add(blob_on_background, np.array([[3, 2, 7, 6]]))
    low.add(blob_on_background, np.array([[0, 0, 4, 4]]))
    assert low.max_box_acc() == {20: 100.0, 50: 50.0}
    assert low.max_box_acc_v2() == pytest.approx(75.0)


def test_largest_contour_misses_the_small_object_that_multi_contour_finds():
    score_map = np.zeros((10, 10))
    score_map[1:4, 1:4] = 1.0
    score_map[6:8, 6:8] = 0.8
    gt = np.array([[6, 6, 7, 7]])  # best multi-contour IoU 4/9 at tau <= 0.8
    multi = BoxAccuracy(BENCHMARK_THRESHOLDS, iou_thresholds=(30, 50), multi_contour=True)
    largest = BoxAccuracy(BENCHMARK_THRESHOLDS, iou_thresholds=(30, 50), multi_contour=False)
    multi.add(score_map, gt)
    largest.add(score_map, gt)
    assert multi.max_box_acc() == {30: 100.0, 50: 0.0}
    assert largest.max_box_acc() == {30: 0.0, 50: 0.0}


def test_box_accuracy_without_images_is_an_error():
    with pytest.raises(InputError, match="no image"):
        BoxAccuracy(BENCHMARK_THRESHOLDS).max_box_acc()


def test_box_accuracy_rejects_thresholds_that_do_not_increase():
    with pytest.raises(InputError, match="strictly increasing"):
        BoxAccuracy(np.array([0.5, 0.2]))


# ---------------------------------------------------------------------------------------------
# PixelPrecisionRecall on hand-built masks

# Thresholds (0, 0.5): bins [0, .5), [.5, 1), [1, 2), [2, 3).
HAND_SCORES = np.array([[0.9, 0.6, 0.3], [0.8, 0.1, 0.7]])
HAND_MASK = np.array([[1, 0, 1], [255, 0, 1]], dtype=np.uint8)
# Foreground scores 0.9, 0.3, 0.7; background 0.6, 0.1; the ignored 0.8 is left out.
# From the top: TP = 0, 0, 2, 3 and FP = 0, 0, 1, 2; 3 foreground pixels.
# Precision 2/3, 3/5 and recall 2/3, 1 where TP + FP > 0.


def _hand_built() -> PixelPrecisionRecall:
    pixels = PixelPrecisionRecall(np.arange(0, 1, 0.5))
    pixels.add(HAND_SCORES, HAND_MASK)
    return pixels


def test_pxap_of_a_hand_built_mask_is_the_area_under_its_precision_recall_steps():
    # 100 * (2/3 * 2/3 + 3/5 * (1 - 2/3)) = 100 * 29/45
    assert _hand_built().pxap() == pytest.approx(100 * 29 / 45, rel=1e-12)


def test_piou_of_a_hand_built_mask_is_the_best_tp_over_gt_plus_fp():
    # max(2 / (3 + 1), 3 / (3 + 2)) = 0.6
    assert _hand_built().piou() == pytest.approx(60.0, rel=1e-12)


def test_precision_recall_lists_points_with_a_positive_prediction_from_the_top():
    precision, recall = _hand_built().precision_recall()
    np.testing.assert_allclose(precision, [2 / 3, 3 / 5], rtol=1e-12)
    np.testing.assert_allclose(recall, [2 / 3, 1.0], rtol=1e-12)


def test_ignored_pixels_are_excluded_from_pxap():
    counted = PixelPrecisionRecall(np.arange(0, 1, 0.5))
    counted.add(HAND_SCORES, np.where(HAND_MASK == 255, 0, HAND_MASK).astype(np.uint8))
    # Had the 0.8 pixel been background: FP = 0, 0, 2, 3 and PxAP = 100 * (2/4 * 2/3 + 3/6 / 3).
    assert counted.pxap() == pytest.approx(50.0, rel=1e-12)
    assert _hand_built().pxap() != pytest.approx(50.0)


def test_pixels_of_all_images_pool_into_one_curve():
    pixels = PixelPrecisionRecall(np.arange(0, 1, 0.5))
    top, bottom = HAND_SCORES[:1], HAND_SCORES[1:]
    pixels.add(top, HAND_MASK[:1])
    pixels.add(bottom, HAND_MASK[1:])
    assert pixels.n_images == 2
    assert pixels.pxap() == pytest.approx(100 * 29 / 45, rel=1e-12)


def test_a_perfect_map_has_pxap_and_piou_100():
    mask = np.array([[1, 1, 0], [0, 255, 0]], dtype=np.uint8)
    pixels = PixelPrecisionRecall(BENCHMARK_THRESHOLDS)
    pixels.add((mask == 1).astype(float), mask)
    assert (pixels.pxap(), pixels.piou()) == (100.0, 100.0)


def test_no_positive_ground_truth_is_an_error_not_a_number():
    pixels = PixelPrecisionRecall(BENCHMARK_THRESHOLDS)
    pixels.add(np.full((2, 2), 0.5), np.array([[0, 0], [255, 0]], dtype=np.uint8))
    with pytest.raises(InputError, match="no positive ground-truth"):
        pixels.pxap()
    with pytest.raises(InputError, match="no positive ground-truth"):
        pixels.piou()


def test_no_positive_prediction_is_an_error_not_a_number():
    # Every score lies below the lowest threshold 0.5: nothing is predicted at any threshold.
    pixels = PixelPrecisionRecall(np.array([0.5, 0.75]))
    pixels.add(np.full((2, 2), 0.2), np.array([[1, 0], [0, 1]], dtype=np.uint8))
    with pytest.raises(InputError, match="no positive prediction"):
        pixels.pxap()


def test_a_mask_with_values_other_than_0_1_255_is_rejected():
    pixels = PixelPrecisionRecall(BENCHMARK_THRESHOLDS)
    with pytest.raises(InputError, match=r"found \[2\]"):
        pixels.add(np.zeros((2, 2)), np.array([[0, 1], [2, 255]], dtype=np.uint8))


def test_a_mask_of_another_shape_than_the_map_is_rejected():
    pixels = PixelPrecisionRecall(BENCHMARK_THRESHOLDS)
    with pytest.raises(InputError, match="shape"):
        pixels.add(np.zeros((2, 2)), np.zeros((2, 3), dtype=np.uint8))


# ---------------------------------------------------------------------------------------------
# The five OpenImages masks of the benchmark's own tests


@pytest.fixture(scope="module")
def openimages_masks(shared) -> dict[str, np.ndarray]:
    """The 224 x 224 ground-truth masks of the val images whose mask files are in shared/."""
    mask_root = shared / "wsol-metadata" / "OpenImages" / "test_masks"
    localization = shared / "wsol-metadata" / "OpenImages" / "val" / "localization.txt"
    paths: dict[str, list[Path]] = {}
    ignores: dict[str, Path | None] = {}
    for line in localization.read_text().splitlines():
        image_id, mask_path, ignore_path = line.split(",")
        if (mask_root / mask_path).is_file():
            paths.setdefault(image_id, []).append(mask_root / mask_path)
            if ignore_path:
                ignores[image_id] = mask_root / ignore_path
    return {
        image_id: benchmark_mask(paths[image_id], ignores.get(image_id), (224, 224))
        for image_id in sorted(paths)
    }


BENCHMARK_MASK_COUNTS = {
    # Foreground and background pixel counts at 224 x 224, from the benchmark's PxAP tests
    # (the ratios it asserts for constant maps: 43031/(43031+7145), 833/(833+49342), ...).
    "val/0bt_c3/1cd9ac0169ec7df0.jpg": (43031, 7145),
    "val/0bt_c3/3a29f0b33894d4a6.jpg": (833, 49342),
    "val/0bt_c3/3b3b9931325d65c9.jpg": (347, 13909),
}


def test_the_five_openimages_masks_are_found(openimages_masks):
    assert len(openimages_masks) == 5


@pytest.mark.parametrize("image_id", sorted(BENCHMARK_MASK_COUNTS))
def test_openimages_masks_have_the_benchmarks_foreground_pixel_counts(openimages_masks, image_id):
    mask = openimages_masks[image_id]
    foreground, background = BENCHMARK_MASK_COUNTS[image_id]
    assert (mask == 1).sum() == foreground
    assert abs(int((mask == 0).sum()) - background) <= 1


@pytest.mark.parametrize("image_id", sorted(BENCHMARK_MASK_COUNTS))
@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_a_constant_map_has_pxap_equal_to_the_foreground_fraction(
    openimages_masks, image_id, value
):
    mask = openimages_masks[image_id]
    pixels = PixelPrecisionRecall(BENCHMARK_THRESHOLDS)
    pixels.add(np.full((224, 224), value), mask)
    foreground, background = BENCHMARK_MASK_COUNTS[image_id]
    assert pixels.pxap() == pytest.approx(100 * foreground / (foreground + background), abs=0.1)
    assert pixels.pxap() == pytest.approx(100 * (mask == 1).sum() / (mask != 255).sum(), rel=1e-12)


@pytest.mark.parametrize("image_id", sorted(BENCHMARK_MASK_COUNTS))
@pytest.mark.parametrize("ignore_score", [0.0, 1.0])
def test_the_gt_mask_as_score_map_has_pxap_100_whatever_the_ignored_scores(
    openimages_masks, image_id, ignore_score
):
    mask = openimages_masks[image_id]
    score_map = np.where(mask == 255, ignore_score, mask).astype(np.float64)
    pixels = PixelPrecisionRecall(BENCHMARK_THRESHOLDS)
    pixels.add(score_map, mask)
    assert pixels.pxap() == 100.0


def test_an_image_without_foreground_is_an_error_on_its_own(openimages_masks):
    pixels = PixelPrecisionRecall(BENCHMARK_THRESHOLDS)
    pixels.add(np.ones((224, 224)), openimages_masks["val/0by6g/490365f63135f3e0.jpg"])
    with pytest.raises(InputError, match="no positive ground-truth"):
        pixels.pxap()


def test_an_all_foreground_image_with_a_constant_map_has_pxap_100(openimages_masks):
    pixels = PixelPrecisionRecall(BENCHMARK_THRESHOLDS)
    pixels.add(np.zeros((224, 224)), openimages_masks["val/0by6g/b4d953e7105da1d8.jpg"])
    assert pixels.pxap() == pytest.approx(100.0)


def _direct_pxap_and_piou(
    score_maps: list[np.ndarray], masks: list[np.ndarray]
) -> tuple[float, float]:
    """PxAP and pIoU by counting pixels at or above each lower bin edge, highest edge first."""
    scores = np.concatenate([s.ravel() for s in score_maps])
    labels = np.concatenate([m.ravel() for m in masks])
    foreground, background = scores[labels == 1], scores[labels == 0]
    edges = np.concatenate([[2.0, 1.0], BENCHMARK_THRESHOLDS[::-1]])
    tp = np.array([(foreground >= t).sum() for t in edges], dtype=float)
    fp = np.array([(background >= t).sum() for t in edges], dtype=float)
    recall = tp / len(foreground)
    area = 0.0
    for i in range(1, len(edges)):
        if tp[i] + fp[i] > 0:
            area += tp[i] / (tp[i] + fp[i]) * (recall[i] - recall[i - 1])
    return 100 * area, float((100 * tp / (len(foreground) + fp)).max())


def test_pxap_and_piou_of_noisy_blurred_maps_match_a_direct_count(openimages_masks):
    rng = np.random.default_rng(0)
    score_maps, masks = [], []
    pixels = PixelPrecisionRecall(BENCHMARK_THRESHOLDS)
    for mask in openimages_masks.values():
        blurred = cv2.GaussianBlur((mask == 1).astype(np.float64), (0, 0), 6.0)
        score_map = np.clip(0.7 * blurred + 0.3 * rng.random(mask.shape), 0.0, 1.0)
        pixels.add(score_map, mask)
        score_maps.append(score_map)
        masks.append(mask)
    pxap, piou = _direct_pxap_and_piou(score_maps, masks)
    assert 50.0 < pxap < 100.0  # an imperfect but informative map
    assert pixels.pxap() == pytest.approx(pxap, abs=1e-9)
    assert pixels.piou() == pytest.approx(piou, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Splits without boxes (the folder run's prediction split: maps, no ground truth)


def prediction_split(folder_run: Path) -> dict[str, Path | list[Path]]:
    names = {"dataset": "photos", "backbone": "fixture", "split": "everything"}
    first = folder_run / paths.FEATURE_SHARD.format(**names, shard=0)
    return {
        "maps": folder_run / paths.MAPS.format(**names, variant="rps"),
        "shards": sorted(first.parent.glob("shard-*.h5"), key=lambda p: int(p.stem[6:])),
        "manifest": folder_run / paths.MANIFEST.format(dataset="photos", split="everything"),
    }


@pytest.mark.workflow
def test_a_split_without_any_ground_truth_is_an_error_saying_it_has_no_metrics(folder_run):
    split = prediction_split(folder_run)
    with pytest.raises(InputError, match="no image of this split has ground truth"):
        evaluate_split(split["maps"], split["shards"], split["manifest"])


@pytest.mark.workflow
def test_a_split_with_masks_and_no_boxes_has_pxap_and_no_box_acc_rows(folder_run, tmp_path):
    split = prediction_split(folder_run)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.pad(np.full((8, 8), 255, np.uint8), 4)).save(mask)
    records = {
        record.image_id: replace(record, mask_paths=(mask,), fingerprints=())
        for record in read_manifest(split["manifest"])
    }
    maps = read_maps(split["maps"])
    table, summary = evaluate_activations(
        maps.maps, maps.image_ids, split["shards"], records, image_size=128
    )
    assert table.empty and set(BOX_ACCURACY_COLUMNS) <= set(table.columns)
    assert summary["n_images"] == 0 and 0 < summary["pxap"] <= 100
