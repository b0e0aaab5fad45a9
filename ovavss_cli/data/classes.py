"""AVSBench-semantic class vocabulary, the AVSBench-OV base/novel split and the label palette.

Ids follow ``label2idx.json`` key order: 0 = background, 1..70 = the classes in alphabetical
order (identical to OV-AVSS ``AVSSBENCH_CATEGORIES``). Names are verbatim, hyphens included,
because CLIP prompts and parity depend on the exact strings.
"""

from __future__ import annotations

import numpy as np

BACKGROUND = "background"

#: The 70 AVSS classes, id i+1 = CLASS_NAMES[i].
CLASS_NAMES: tuple[str, ...] = (
    "accordion", "airplane", "axe", "baby", "bassoon", "bell", "bird", "boat", "boy", "bus",
    "car", "cat", "cello", "clarinet", "clipper", "clock", "dog", "donkey", "drum", "duck",
    "elephant", "emergency-car", "erhu", "flute", "frying-food", "girl", "goose", "guitar", "gun",
    "guzheng", "hair-dryer", "handpan", "harmonica", "harp", "helicopter", "hen", "horse",
    "keyboard", "leopard", "lion", "man", "marimba", "missile-rocket", "motorcycle", "mower",
    "parrot", "piano", "pig", "pipa", "saw", "saxophone", "sheep", "sitar", "sorna", "squirrel",
    "tabla", "tank", "tiger", "tractor", "train", "trombone", "truck", "trumpet", "tuba",
    "ukulele", "utv", "vacuum-cleaner", "violin", "wolf", "woman",
)  # fmt: skip

#: id -> name for all 71 labels (background included).
LABEL_NAMES: tuple[str, ...] = (BACKGROUND, *CLASS_NAMES)
NUM_LABELS = len(LABEL_NAMES)  # 71

#: AVSBench-OV split (OV-AVSS test scripts; base = frequency f ∪ c, novel = r ∪ n).
BASE_IDS: tuple[int, ...] = (
    2, 4, 6, 7, 8, 9, 10, 11, 12, 16, 17, 18, 19, 20, 21, 26, 27, 28, 29, 31, 35, 36, 37, 38,
    40, 41, 43, 44, 46, 47, 48, 52, 55, 58, 59, 60, 62, 63, 67, 70,
)  # fmt: skip
NOVEL_IDS: tuple[int, ...] = (
    1, 3, 5, 13, 14, 15, 22, 23, 24, 25, 30, 32, 33, 34, 39, 42, 45, 49, 50, 51, 53, 54, 56,
    57, 61, 64, 65, 66, 68, 69,
)  # fmt: skip

#: AVSBench-object S4 category (folder name) -> AVSS class name (avsbench-format.md §1.5).
S4_CATEGORY_TO_CLASS: dict[str, str] = {
    "baby_laughter": "baby",
    "female_singing": "woman",
    "male_speech": "man",
    "dog_barking": "dog",
    "cat_meowing": "cat",
    "lions_roaring": "lion",
    "horse_clip-clop": "horse",
    "coyote_howling": "wolf",
    "mynah_bird_singing": "bird",
    "playing_acoustic_guitar": "guitar",
    "playing_tabla": "tabla",
    "playing_violin": "violin",
    "playing_piano": "piano",
    "playing_ukulele": "ukulele",
    "playing_glockenspiel": "marimba",
    "helicopter": "helicopter",
    "race_car": "car",
    "driving_buses": "bus",
    "ambulance_siren": "emergency-car",
    "typing_on_computer_keyboard": "keyboard",
    "chainsawing_trees": "saw",
    "cap_gun_shooting": "gun",
    "lawn_mowing": "mower",
}


def class_id(name: str) -> int:
    """Label id of a class name (background = 0); KeyError for unknown names."""
    return _NAME_TO_ID[name]


_NAME_TO_ID = {name: i for i, name in enumerate(LABEL_NAMES)}


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL-VOC colour map, (n, 3) uint8: bits of the index spread over R, G, B, MSB first."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for index in range(n):
        value, shift = index, 7
        r = g = b = 0
        while value:
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
            shift -= 1
        palette[index] = (r, g, b)
    return palette


#: (71, 3) uint8 colours of the AVSS labels, in id order.
AVSS_PALETTE: np.ndarray = voc_palette(NUM_LABELS)
AVSS_PALETTE.setflags(write=False)
