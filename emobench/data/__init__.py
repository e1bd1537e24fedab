"""Input data: images to measure on (images.py) and labelled sets to fine-tune on (labeled.py)."""
