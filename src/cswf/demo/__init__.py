"""Demo data: a generated book of business written as landing files."""

from cswf.demo.generate import BookSummary, generate_book, simulate_book

__all__ = ["BookSummary", "generate_book", "simulate_book"]
