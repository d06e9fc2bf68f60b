"""The paper's figures: plain functions from tables to matplotlib figures (no file I/O)."""
