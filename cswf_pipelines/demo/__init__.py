"""Demo data: a generated book of business written as landing files."""

from cswf_pipelines.demo.generate import BookSummary, generate_book, simulate_book

__all__ = ["BookSummary", "generate_book", "simulate_book"]
