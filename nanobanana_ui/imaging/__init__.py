"""Imaging: input images, personal-metadata stripping, PNG metadata and writing, saved outputs, region blending."""
