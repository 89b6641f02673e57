"""Pipeline stages: describe -> salient -> associate -> caption -> export."""
