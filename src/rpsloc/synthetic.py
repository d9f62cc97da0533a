"""The built-in synthetic dataset: textured objects of one hue family per class, written in the
WSOL benchmark layout (METHOD.md section 2) so the whole workflow runs without real data.

Two styles. `grey`: the objects on near-grey backgrounds; foreground pixels are strongly
saturated ((max(rgb) - min(rgb)) / 255 >= 0.5) and background pixels barely (<= 0.15), so a
"colourfulness" feature localizes the objects exactly (the test fixture backbone relies on it).
`mosaic`: the background is a dense multi-hue texture as saturated and contrasted as the objects,
so no colour or contrast statistic singles them out and a network at random init localizes
little; what still marks an object is a closed shape of one hue family and one texture, the
same within its class across the dataset, which self-supervised pretraining learns
(docs/pretraining.md). Objects are placed anywhere in the image, so a centre prior does clearly
worse in both styles.
"""

from __future__ import annotations

import colorsys
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from rpsloc.io import atomic_path

# (width, height) pairs from the CUB test split's image_sizes.txt (wsolevaluation metadata,
# MIT licence), every 290th line: the real size distribution, embedded so that the package
# never reads ../shared at run time.
CUB_IMAGE_SIZES: tuple[tuple[int, int], ...] = (
    (500, 335),
    (500, 332),
    (500, 335),
    (500, 382),
    (420, 280),
    (500, 336),
    (500, 333),
    (500, 333),
    (390, 487),
    (500, 333),
    (220, 330),
    (500, 344),
    (500, 347),
    (500, 333),
    (500, 334),
    (335, 500),
    (500, 375),
    (500, 373),
    (248, 231),
    (357, 500),
)

JPEG_QUALITY = 95
SHAPES = ("ellipse", "rectangle", "blob")
TEXTURES = ("stripes", "dots", "noise")
_DEFAULT_SPLITS = {"train": 64, "val": 32, "test": 32}
DEFAULT_STYLE = "grey"


@dataclass(frozen=True)
class Style:
    """How a synthetic image looks: its background, the object sizes and the texture contrast."""

    background: Callable[[np.random.Generator, int, int], np.ndarray]
    #: fraction of the image area an object covers: smallest, largest alone, largest of two
    areas: tuple[float, float, float]
    #: range of the HSV value of the texture's second colour (the first one's is 0.85-1)
    second_value: tuple[float, float]


def generate_synthetic_dataset(
    root: Path,
    splits: Mapping[str, int] = _DEFAULT_SPLITS,
    n_classes: int = 4,
    seed: int = 0,
    max_side: int = 320,
    sizes_file: Path | None = None,
    style: str = DEFAULT_STYLE,
) -> None:
    """Write the synthetic dataset under `root` in WSOL layout.

    `images/<split>/<class>/<n>.jpg` (id `<split>/<class>/<n>.jpg`), one 0/255 PNG per object
    instance `masks/<split>/<class>/<n>_<k>.png`, and `metadata/<split>/` with image_ids.txt,
    class_labels.txt, image_sizes.txt, localization.txt (tight boxes of the instance masks,
    x1/y1 inclusive) and mask_localization.txt (`id,mask_path,` with no ignore mask).
    Image sizes are drawn from CUB's (or `sizes_file`'s, a WSOL image_sizes.txt) and scaled so
    the longer side is `max_side`. The class sets the shape family and hue; `style` (a key of
    STYLES) the background and object sizes. The same arguments give byte-identical files.
    """
    if n_classes < 1:
        raise ValueError(f"expected n_classes >= 1, found {n_classes}")
    if max_side < 32:
        raise ValueError(f"expected max_side >= 32, found {max_side}")
    if style not in STYLES:
        raise ValueError(f"expected a style in {sorted(STYLES)}, found {style!r}")
    root = Path(root)
    sizes = _read_sizes(Path(sizes_file)) if sizes_file is not None else CUB_IMAGE_SIZES
    for split, count in splits.items():
        _write_split(root, split, int(count), n_classes, seed, max_side, sizes, style)


def _read_sizes(path: Path) -> tuple[tuple[int, int], ...]:
    """(width, height) pairs of a WSOL image_sizes.txt (`id,width,height` lines)."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line:
            _, width, height = line.rsplit(",", 2)
            pairs.append((int(width), int(height)))
    if not pairs:
        raise ValueError(f"{path}: no image sizes")
    return tuple(pairs)


def _write_split(
    root: Path,
    split: str,
    count: int,
    n_classes: int,
    seed: int,
    max_side: int,
    sizes: tuple[tuple[int, int], ...],
    style: str,
) -> None:
    ids, labels, size_lines, boxes, masks = [], [], [], [], []
    for index in range(count):
        label = index % n_classes
        image, instance_masks = _render(split, index, n_classes, seed, max_side, sizes, style)
        width, height = image.shape[1], image.shape[0]
        image_id = f"{split}/{label}/{index:04d}.jpg"
        _save_jpeg(image, root / "images" / image_id)
        ids.append(image_id)
        labels.append(f"{image_id},{label}")
        size_lines.append(f"{image_id},{width},{height}")
        for k, mask in enumerate(instance_masks):
            mask_id = f"{split}/{label}/{index:04d}_{k}.png"
            mask_path = root / "masks" / mask_id
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path, format="PNG")
            x0, y0, x1, y1 = mask_box(mask)
            boxes.append(f"{image_id},{x0},{y0},{x1},{y1}")
            masks.append(f"{image_id},{mask_id},")
    metadata = root / "metadata" / split
    metadata.mkdir(parents=True, exist_ok=True)
    files = {
        "image_ids.txt": ids,
        "class_labels.txt": labels,
        "image_sizes.txt": size_lines,
        "localization.txt": boxes,
        "mask_localization.txt": masks,
    }
    for name, lines in files.items():  # no final newline, as in the real WSOL files
        with atomic_path(metadata / name) as temporary:  # written last: a split is complete
            temporary.write_text("\n".join(lines), encoding="utf-8")  # once they are there


def _render(
    split: str,
    index: int,
    n_classes: int,
    seed: int,
    max_side: int,
    sizes: tuple[tuple[int, int], ...],
    style: str,
    empty: bool = False,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Image `index` of a split and its instance masks, from its own seeded generator."""
    rng = np.random.default_rng([seed, zlib.crc32(split.encode("utf-8")), index])
    width, height = _scaled_size(sizes[rng.integers(len(sizes))], max_side)
    return render_image(rng, width, height, index % n_classes, n_classes, style, empty)


def _save_jpeg(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(
        path, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False
    )


def generate_synthetic_folder(
    root: Path,
    splits: Mapping[str, int],
    empty: float = 0.25,
    n_classes: int = 4,
    seed: int = 0,
    max_side: int = 320,
    style: str = DEFAULT_STYLE,
) -> None:
    """A plain folder of synthetic photos, `<root>/<split>/<n>.jpg`, in which a fraction
    `empty` of each split (spread evenly) shows the background only, and their ground truth as
    a bring-your-own CSV, `<root>/dataset.csv` (docs/datasets.md): each object image's class
    and tight boxes, empty fields for the empty ones. The `folder` adapter reads the images
    alone (no labels, no boxes), the `csv` adapter reads them with their ground truth; the
    objectness scores are measured on it (docs/boxes.md, "Scores")."""
    if not 0 <= empty <= 1:
        raise ValueError(f"expected a fraction of empty images in [0, 1], found {empty}")
    root = Path(root)
    lines = ["split,image_path,label,x0,y0,x1,y1"]
    for split, count in splits.items():
        for index in range(int(count)):
            is_empty = int((index + 1) * empty) > int(index * empty)
            image, instance_masks = _render(
                split, index, n_classes, seed, max_side, CUB_IMAGE_SIZES, style, is_empty
            )
            name = f"{split}/{index:04d}.jpg"
            _save_jpeg(image, root / name)
            label = "" if is_empty else str(index % n_classes)
            boxes = [",".join(map(str, mask_box(mask))) for mask in instance_masks]
            lines += [f"{split},{name},{label},{box}" for box in boxes or [",,,"]]
    with atomic_path(root / "dataset.csv") as temporary:
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _scaled_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    width, height = size
    scale = max_side / max(width, height)
    return max(16, round(width * scale)), max(16, round(height * scale))


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box (x0, y0, x1, y1), inclusive, of a non-empty boolean mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def render_image(
    rng: np.random.Generator,
    width: int,
    height: int,
    label: int,
    n_classes: int,
    style: str = DEFAULT_STYLE,
    empty: bool = False,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One (height, width, 3) uint8 image in `style` (a key of STYLES) and its instance masks
    (bool, non-overlapping); an `empty` image is the background alone, without masks."""
    look = STYLES[style]
    image = look.background(rng, width, height)
    if empty:
        return image, []
    n_objects = 2 if rng.random() < 0.25 else 1
    masks = _place_objects(rng, width, height, label, n_objects, look.areas)
    for mask in masks:
        colours = _foreground(rng, width, height, label, n_classes, look.second_value)
        image[mask] = colours[mask]
    return image, masks


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a coarse random grid, bilinearly upsampled."""
    grid = rng.random((cells, cells)).astype(np.float32)
    field = Image.fromarray(grid).resize((width, height), Image.BILINEAR)
    return np.asarray(field, dtype=np.float32)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Near-grey, smoothly varying, finely textured: channel spread <= 24 of 255."""
    luminance = 70 + 120 * _smooth_noise(rng, width, height, int(rng.integers(3, 7)))
    luminance += rng.normal(0, 6, size=(height, width)).astype(np.float32)  # grey grain
    tint = np.stack(
        [_smooth_noise(rng, width, height, 3) for _ in range(3)], axis=-1
    )  # each channel's own slow drift, at most 24 levels apart
    rgb = luminance[..., None] + 24 * (tint - 0.5)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _mosaic_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A dense multi-hue texture: every hue three times over a 16-32 cell noise field, saturation
    0.9, value from 0.2 to 1 on a finer field; as colourful and contrasted as the objects."""
    hue = (3 * _smooth_noise(rng, width, height, int(rng.integers(16, 32)))) % 1.0
    value = 0.2 + 0.8 * _smooth_noise(rng, width, height, int(rng.integers(24, 48)))
    rgb = _hsv_to_rgb(hue, np.float32(0.9), value)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def _hsv_to_rgb(hue: np.ndarray, saturation: np.floating, value: np.ndarray) -> np.ndarray:
    """colorsys.hsv_to_rgb over arrays: (height, width) fields -> (height, width, 3) in [0, 1]."""
    sector = np.floor(hue * 6.0)
    fraction = hue * 6.0 - sector
    p = value * (1 - saturation)
    q = value * (1 - saturation * fraction)
    t = value * (1 - saturation * (1 - fraction))
    sector = sector.astype(np.int64) % 6
    channels = [(value, q, p, p, t, value), (t, value, value, q, p, p), (p, p, t, value, value, q)]
    return np.stack([np.choose(sector, channel) for channel in channels], axis=-1)


def _foreground(
    rng: np.random.Generator,
    width: int,
    height: int,
    label: int,
    n_classes: int,
    second_value: tuple[float, float],
) -> np.ndarray:
    """A saturated, textured colour field for one object: the hue is set by the class; the
    texture's second colour has a value drawn from `second_value`."""
    hue = (label / n_classes + rng.uniform(-0.02, 0.02)) % 1.0
    base = np.array(colorsys.hsv_to_rgb(hue, 1.0, rng.uniform(0.85, 1.0)), dtype=np.float32)
    second = np.array(
        colorsys.hsv_to_rgb((hue + 0.06) % 1.0, 0.9, rng.uniform(*second_value)), dtype=np.float32
    )
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if texture == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(6, 14)
        phase = (xs * np.cos(angle) + ys * np.sin(angle)) / period
        pattern = (np.floor(phase) % 2).astype(np.float32)
    elif texture == "dots":
        period = rng.uniform(8, 14)
        u = (xs % period) / period - 0.5
        v = (ys % period) / period - 0.5
        pattern = (u * u + v * v < 0.09).astype(np.float32)
    else:
        pattern = _smooth_noise(rng, width, height, int(rng.integers(12, 24)))
    colours = base * (1 - pattern[..., None]) + second * pattern[..., None]
    return np.clip(np.rint(colours * 255), 0, 255).astype(np.uint8)


def _place_objects(
    rng: np.random.Generator,
    width: int,
    height: int,
    label: int,
    n_objects: int,
    areas: tuple[float, float, float],
) -> list[np.ndarray]:
    """Masks of `n_objects` shapes of the class's family, anywhere in the image, each covering
    a fraction of its area between `areas[0]` and `areas[1]` (`areas[2]` when there are two).
    The boxes of two objects keep an 8-pixel gap, so their masks never touch; a second object
    that does not fit in 50 tries is dropped."""
    shape = SHAPES[label % len(SHAPES)]
    smallest, largest_one, largest_two = areas
    largest = largest_one if n_objects == 1 else largest_two
    boxes: list[tuple[int, int, int, int]] = []
    masks: list[np.ndarray] = []
    for _ in range(n_objects):
        for _attempt in range(50):
            box = _random_box(rng, width, height, shape, rng.uniform(smallest, largest))
            if all(_apart(box, other, gap=8) for other in boxes):
                boxes.append(box)
                masks.append(_draw_shape(rng, width, height, shape, box))
                break
    return masks


def _apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int) -> bool:
    """Whether two inclusive boxes are separated by at least `gap` pixels along some axis."""
    return a[0] > b[2] + gap or b[0] > a[2] + gap or a[1] > b[3] + gap or b[1] > a[3] + gap


def _random_box(
    rng: np.random.Generator, width: int, height: int, shape: str, area: float
) -> tuple[int, int, int, int]:
    """An inclusive box whose shape covers about `area` of the image, uniformly placed."""
    fill = {"ellipse": np.pi / 4, "rectangle": 1.0, "blob": 0.7}[shape]
    aspect = rng.uniform(0.6, 1.6)
    box_area = area * width * height / fill
    box_w = int(min(width - 2, max(8, round(np.sqrt(box_area * aspect)))))
    box_h = int(min(height - 2, max(8, round(box_area / box_w))))
    x0 = int(rng.integers(0, width - box_w))
    y0 = int(rng.integers(0, height - box_h))
    return x0, y0, x0 + box_w - 1, y0 + box_h - 1


def _draw_shape(
    rng: np.random.Generator, width: int, height: int, shape: str, box: tuple[int, int, int, int]
) -> np.ndarray:
    """The filled shape inscribed in `box`, as a (height, width) boolean mask."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if shape == "ellipse":
        draw.ellipse(box, fill=255)
    elif shape == "rectangle":
        draw.rectangle(box, fill=255)
    else:
        draw.polygon(_blob_outline(rng, box), fill=255)
    return np.asarray(canvas) > 0


def _blob_outline(
    rng: np.random.Generator, box: tuple[int, int, int, int]
) -> list[tuple[float, float]]:
    """An irregular closed outline inside `box`: a circle with random low harmonics."""
    x0, y0, x1, y1 = box
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    radius = np.ones_like(angles)
    for harmonic in (2, 3, 5):
        radius += rng.uniform(0.05, 0.15) * np.cos(harmonic * angles + rng.uniform(0, 2 * np.pi))
    radius /= radius.max()
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
    return [
        (float(cx + rx * r * np.cos(a)), float(cy + ry * r * np.sin(a)))
        for r, a in zip(radius, angles, strict=True)
    ]


#: `grey`: the fixture backbone's set. `mosaic`: objects are smaller, since any uninformative
#: map yields a box around the whole image, which overlaps a large object with IoU >= 0.3, and
#: their textures are dark on bright, as contrasted as the background.
STYLES: dict[str, Style] = {
    "grey": Style(_background, areas=(0.10, 0.45, 0.25), second_value=(0.7, 0.85)),
    "mosaic": Style(_mosaic_background, areas=(0.06, 0.30, 0.18), second_value=(0.25, 0.45)),
}
