"""Tiny fake copies of each native layout (METHOD.md section 2), written in a test's folder:
shared by the adapter tests and by the manifest stage's workflow test."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from rpsloc.transforms import boxes_to_crop

# Every hand-computed crop box below uses one of two images: 240x120 and 96x96 pixels.
# Fine-grained defaults (resize 480, crop 448, offset o = 16): for 240x120, s_x = 2, s_y = 4,
# so the 0-based box (10, 20, 100, 80) becomes (20-16, 80-16, 200-16, 320-16) = (4, 64, 184,
# 304); the whole image (0, 0, 239, 119) becomes (-16 -> 0, -16 -> 0, 462 -> 447, 460 -> 447).
# For 96x96, s = 5: (0, 0, 95, 95) -> (0, 0, 459 -> 447, 459 -> 447).
WIDE, SQUARE = (240, 120), (96, 96)
WIDE_BOX_CROP = [4, 64, 184, 304]
FULL_CROP = [0, 0, 447, 447]


def write_image(path: Path, size: tuple[int, int], colour=(120, 60, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def crop_boxes(record, size: int, crop: int) -> list[list[int]]:
    return boxes_to_crop(record.boxes, record.width, record.height, size, crop).tolist()


def wsol_split(folder: Path, rows: list[tuple[str, int, tuple[int, int] | None, str]]) -> None:
    """A WSOL metadata split: rows of (id, label, size or None, localization lines)."""
    write_text(folder / "image_ids.txt", "".join(f"{i}\n" for i, _, _, _ in rows))
    write_text(folder / "class_labels.txt", "".join(f"{i},{label}\n" for i, label, _, _ in rows))
    sizes = "".join(f"{i},{s[0]},{s[1]}\n" for i, _, s, _ in rows if s is not None)
    write_text(folder / "image_sizes.txt", sizes)
    write_text(folder / "localization.txt", "".join(loc for _, _, _, loc in rows))


# ----------------------------------------------------------------------------- CUB


def make_cub(tmp_path: Path) -> Path:
    """CUB_200_2011 with images/, the WSOL metadata and CUB segmentation PNGs."""
    root = tmp_path / "CUB_200_2011"
    write_image(root / "images/001.A/a_1.jpg", WIDE)
    write_image(root / "images/002.B/b_2.jpg", SQUARE)
    wsol_split(
        tmp_path / "wsol/test",
        [
            ("001.A/a_1.jpg", 0, WIDE, "001.A/a_1.jpg,10,20,100,80\n"),
            ("002.B/b_2.jpg", 1, SQUARE, "002.B/b_2.jpg,0,0,95,95\n"),
        ],
    )
    soft = np.zeros(WIDE[::-1], dtype=np.uint8)
    soft[:, :120] = 153  # 3 of 5 annotators: foreground
    soft[:, 120:] = 102  # 2 of 5: background
    for name in ("001.A/a_1.png", "002.B/b_2.png"):
        (tmp_path / "segmentations" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(soft).save(tmp_path / "segmentations" / name)
    return tmp_path


def cub_dataset(cub: Path, **keys) -> dict:
    return {
        "adapter": "cub",
        "root": str(cub / "CUB_200_2011"),
        "metadata": str(cub / "wsol"),
        **keys,
    }


# ----------------------------------------------------------------------------- Stanford Cars

CARS_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")


def struct_array(rows: list[tuple], fields: tuple[str, ...]) -> np.ndarray:
    """A 1xN MATLAB struct array as the devkit stores it."""
    array = np.zeros((1, len(rows)), dtype=[(name, object) for name in fields])
    for index, row in enumerate(rows):
        for name, value in zip(fields, row, strict=True):
            array[0, index][name] = value
    return array


def make_cars(tmp_path: Path) -> Path:
    """Stanford Cars: train annotations in devkit/, test ones (with labels) at the top."""
    write_image(tmp_path / "cars_train/00001.jpg", WIDE)
    write_image(tmp_path / "cars_train/00002.jpg", SQUARE)
    write_image(tmp_path / "cars_test/00001.jpg", SQUARE)
    (tmp_path / "devkit").mkdir()
    # 1-based MATLAB coordinates: (11, 21, 101, 81) is the 0-based (10, 20, 100, 80)
    train = [(11, 21, 101, 81, 3, "00001.jpg"), (1, 1, 96, 96, 196, "00002.jpg")]
    scipy.io.savemat(
        tmp_path / "devkit/cars_train_annos.mat", {"annotations": struct_array(train, CARS_FIELDS)}
    )
    test = [(1, 1, 96, 96, 1, "00001.jpg")]
    scipy.io.savemat(
        tmp_path / "cars_test_annos_withlabels.mat",
        {"annotations": struct_array(test, CARS_FIELDS)},
    )
    return tmp_path


# ----------------------------------------------------------------------------- Stanford Dogs


def dogs_xml(width: int, height: int, boxes: list[tuple[int, int, int, int]]) -> str:
    objects = "".join(
        f"<object><name>dog</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
        f"<ymax>{y1}</ymax></bndbox></object>"
        for x0, y0, x1, y1 in boxes
    )
    return (
        f"<annotation><folder>02085620</folder><size><width>{width}</width>"
        f"<height>{height}</height><depth>3</depth></size>{objects}</annotation>"
    )


def _cell(values: list) -> np.ndarray:
    return np.array(values, dtype=object).reshape(-1, 1)


def make_dogs(tmp_path: Path) -> Path:
    """Stanford Dogs: Images/, Annotation/ (XML without extension), train_list.mat."""
    write_image(tmp_path / "Images/n01-Chihuahua/n01_1.jpg", WIDE)
    write_image(tmp_path / "Images/n02-Akita/n02_7.jpg", SQUARE)
    write_text(
        tmp_path / "Annotation/n01-Chihuahua/n01_1",
        dogs_xml(240, 120, [(11, 21, 101, 81), (1, 1, 240, 120)]),
    )
    write_text(tmp_path / "Annotation/n02-Akita/n02_7", dogs_xml(96, 96, [(1, 1, 96, 96)]))
    scipy.io.savemat(
        tmp_path / "train_list.mat",
        {
            "file_list": _cell(["n01-Chihuahua/n01_1.jpg", "n02-Akita/n02_7.jpg"]),
            "annotation_list": _cell(["n01-Chihuahua/n01_1", "n02-Akita/n02_7"]),
            "labels": np.array([[1], [120]], dtype=np.uint8),
        },
    )
    return tmp_path


# ----------------------------------------------------------------------------- FGVC-Aircraft


def make_aircraft(tmp_path: Path) -> Path:
    data = tmp_path / "fgvc-aircraft-2013b/data"
    write_image(data / "images/0000001.jpg", WIDE)
    write_image(data / "images/0000002.jpg", SQUARE)
    write_text(data / "images_train.txt", "0000001\n")
    write_text(data / "images_test.txt", "0000002\n")
    write_text(data / "images_box.txt", "0000001 11 21 101 81\n0000002 1 1 96 96\n")
    write_text(data / "variants.txt", "707-320\nCessna 172\n")
    write_text(data / "images_variant_train.txt", "0000001 Cessna 172\n")
    return tmp_path / "fgvc-aircraft-2013b"


# ----------------------------------------------------------------------------- CIFAR


def cifar_pixels(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 3072), dtype=np.uint8)


def write_pickle(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({k.encode(): v for k, v in content.items()}, protocol=2))


def make_cifar10(tmp_path: Path) -> Path:
    root = tmp_path / "cifar-10-batches-py"
    for batch in range(1, 6):
        write_pickle(
            root / f"data_batch_{batch}",
            {"data": cifar_pixels(2, batch), "labels": [batch, 9 - batch], "batch_label": b"x"},
        )
    return root


# ----------------------------------------------------------------------------- bring your own

CSV_HEADER = "split,image_path,label,x0,y0,x1,y1\n"


def make_own(tmp_path: Path) -> Path:
    write_image(tmp_path / "photos/a.jpg", WIDE)
    write_image(tmp_path / "photos/b.png", SQUARE)
    write_image(tmp_path / "photos/c.jpg", SQUARE)
    write_text(
        tmp_path / "dataset.csv",
        CSV_HEADER + "test,photos/a.jpg,4,10,20,100,80\n"
        "train,photos/c.jpg,,,,,\n"
        "test,photos/a.jpg,4,0,0,239,119\n"
        "test,photos/b.png,0,0,0,95,95\n",
    )
    return tmp_path
