"""The peers on the same cached features (docs/method.md "CorLoc and the peers"): LOST
(Simeoni et al., BMVC 2021), TokenCut (Wang et al., CVPR 2022) and DINO's CLS attention (Caron
et al., ICCV 2021), each with its paper's defaults.

LOST and TokenCut read a ViT's last-block patch keys; on a backbone without keys (a ResNet or
VGG) they read the feature map itself, as LOST does for its ResNet and VGG runs (there
standardised by a LayerNorm over the whole (P, C) matrix without weights; TokenCut's cosine
graph of the same standardised features), and the maps file says so (`peer_input`). Both give
one box, the bounding box of a connected component (4-neighbourhood, `scipy.ndimage.label`) on
the patch grid, as `x0, y0, x1, y1` in cells with `x1`, `y1` exclusive.

scipy is imported where a peer runs, not with the module: every maps job imports this one, and
most run no peer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: LOST's number of lowest-degree patches the seed is expanded to (ViT-S/16).
LOST_K_PATCHES = 100
#: TokenCut's similarity threshold of a graph edge and the weight of a missing edge.
TOKENCUT_TAU = 0.2
TOKENCUT_EPS = 1e-5
#: LayerNorm's epsilon of LOST's standardisation of a CNN's features.
LAYER_NORM_EPS = 1e-5


@dataclass(frozen=True)
class Discovery:
    """One image's object: its mask on the (h, w) patch grid, its box in cells (x1, y1
    exclusive) and the seed patch (raster index) the component was chosen by."""

    mask: np.ndarray
    box: np.ndarray
    seed: int


def component_box(foreground: np.ndarray, seed: int) -> Discovery:
    """The connected component of a (h, w) boolean grid that holds the seed, and its box."""
    import scipy.ndimage

    labels, _ = scipy.ndimage.label(foreground)
    component = labels.reshape(-1)[seed]
    if component == 0:
        raise ValueError(f"the seed patch {seed} lies in the background")
    mask = labels == component
    rows, columns = np.nonzero(mask)
    box = np.array([columns.min(), rows.min(), columns.max() + 1, rows.max() + 1], dtype=np.int64)
    return Discovery(mask, box, int(seed))


def lost(keys: np.ndarray, grid: tuple[int, int], k_patches: int = LOST_K_PATCHES) -> Discovery:
    """LOST: with A = K K^T over the (P, D) patch keys, a patch's degree is the number of other
    patches it has a positive similarity with; the seed is the patch of lowest degree (the
    first in raster order among equals); it is expanded to those of the `k_patches` lowest-
    degree patches similar to it (A > 0, the seed included); the object is the component of
    the seed in {p : sum over the expansion of A[., p] > 0}."""
    keys = np.asarray(keys, dtype=np.float64).reshape(-1, keys.shape[-1])
    similarity = keys @ keys.T
    positive = similarity > 0
    np.fill_diagonal(positive, False)
    order = np.argsort(positive.sum(axis=1), kind="stable")
    seed = int(order[0])
    potentials = order[:k_patches]
    expansion = potentials[similarity[seed, potentials] > 0]
    foreground = similarity[expansion].sum(axis=0) > 0
    return component_box(foreground.reshape(grid), seed)


def tokencut_graph(
    keys: np.ndarray, tau: float = TOKENCUT_TAU, eps: float = TOKENCUT_EPS
) -> np.ndarray:
    """TokenCut's (P, P) graph: 1 where the cosine similarity of two patches' keys exceeds
    `tau`, `eps` elsewhere."""
    keys = np.asarray(keys, dtype=np.float64).reshape(-1, keys.shape[-1])
    unit = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), 1e-12)
    return np.where(unit @ unit.T > tau, 1.0, eps)


def fiedler_vector(weights: np.ndarray) -> np.ndarray:
    """The second-smallest generalised eigenvector of (D - W) x = lambda D x (D the degrees),
    scaled so that x^T D x = 1 as `scipy.linalg.eigh(D - W, D)` scales it (sign arbitrary).
    Solved as the symmetric problem D^-1/2 (D - W) D^-1/2 y = lambda y, x = D^-1/2 y."""
    import scipy.linalg

    degrees = weights.sum(axis=1)
    inverse_root = 1.0 / np.sqrt(degrees)
    normalised = np.eye(len(weights)) - inverse_root[:, None] * weights * inverse_root[None]
    _, vectors = scipy.linalg.eigh(normalised, subset_by_index=[1, 1])
    return vectors[:, 0] * inverse_root


def tokencut(
    keys: np.ndarray,
    grid: tuple[int, int],
    tau: float = TOKENCUT_TAU,
    eps: float = TOKENCUT_EPS,
) -> Discovery:
    """TokenCut (no bilateral solver): the Normalized Cut's bipartition of the key graph is
    the patches whose Fiedler-vector entry exceeds its mean; the seed is the patch of largest
    absolute entry and the side that holds it is the foreground; the object is the seed's
    component of that side."""
    vector = fiedler_vector(tokencut_graph(keys, tau, eps))
    bipartition = vector > vector.mean()
    seed = int(np.argmax(np.abs(vector)))
    if not bipartition[seed]:
        bipartition = ~bipartition
    return component_box(bipartition.reshape(grid), seed)


def dino_attention(cls_attention: np.ndarray) -> np.ndarray:
    """DINO's map: the last block's CLS attention over the patches, (heads, h, w), summed over
    the heads."""
    return np.asarray(cls_attention, dtype=np.float32).sum(axis=0)


def standardised(features: np.ndarray) -> np.ndarray:
    """LOST's input from a CNN: the (h, w, C) features as (P, C), less their mean over every
    entry, over their standard deviation (a LayerNorm over the whole matrix, no weights)."""
    flat = np.asarray(features, dtype=np.float64).reshape(-1, features.shape[-1])
    return (flat - flat.mean()) / np.sqrt(flat.var() + LAYER_NORM_EPS)
