"""Inference backends: each turns (audio, prompt) requests into raw text answers."""
