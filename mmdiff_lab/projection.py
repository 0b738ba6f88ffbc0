"""2-D maps of embeddings: UMAP (McInnes et al., 2018) when umap-learn is installed, PCA otherwise or on request.

A projection is fitted once and reused (``transform``) for new points such as a prior's trajectory, so
a path can be drawn on the same map as the points it moves between.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


class Projection:
    """Fit a 2-D map of (N, E) points.

    Args:
        method: "umap" or "pca"; "umap" falls back to PCA (said in ``self.method``) without umap-learn.
        init: (N, 2) starting layout for UMAP, e.g. the previous checkpoint's, so maps of successive
            checkpoints stay comparable.
        seed: fixes the layout.
    """

    def __init__(self, points: np.ndarray, method: str = "umap", init: np.ndarray | None = None, seed: int = 0):
        if method not in ("umap", "pca"):
            raise ValueError(f"unknown projection {method!r}; choose umap or pca")
        self.method = method if method == "pca" or umap_available() else "pca"
        points = np.asarray(points, dtype=np.float32)
        if self.method == "umap":
            import umap

            self._model = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=seed,
                                    init=init if init is not None else "spectral", n_jobs=1)
            self.xy = self._model.fit_transform(points)
        else:
            self._model = PCA(n_components=2, random_state=seed)
            self.xy = self._model.fit_transform(points)
            if init is not None:  # flip axes to agree with the previous layout
                signs = np.sign((self.xy * init).sum(0))
                signs[signs == 0] = 1
                self._signs = signs
                self.xy = self.xy * signs
        self.xy = self.xy.astype(np.float32)

    def transform(self, points: np.ndarray) -> np.ndarray:
        """New (M, E) points on the fitted map, (M, 2)."""
        xy = self._model.transform(np.asarray(points, dtype=np.float32))
        return xy * getattr(self, "_signs", 1)
