"""Moved to ``models/preprocess.py`` (both families use it); kept for ``engine/clip_fit.py``'s import only."""

from ..preprocess import resize_shortest_edge

__all__ = ["resize_shortest_edge"]
