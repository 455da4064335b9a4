"""Data layer: DESED metadata and audio checks, 16 kHz resample cache, label encoder, datasets,
multi-set batch sampler and the built-in mini DESED generator."""
