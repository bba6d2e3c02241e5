"""Batch runs: files of embeddings through the pipeline into files of prompts, resumably."""
