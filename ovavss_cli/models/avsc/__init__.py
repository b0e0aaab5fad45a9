"""AVSC (Liu et al., ACM MM 2023), re-implemented from the paper's description: an audio-independent instance
segmenter, an audio category classifier, and the audio-visual semantic correlation that combines them."""
