"""Building blocks shared by every model family: backbones, VGGish, position encodings, deformable attention,
audio-visual fusion, the Mask2Former-style pixel decoder and mask decoder (with their MLP)."""
