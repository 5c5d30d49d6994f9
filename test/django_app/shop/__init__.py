"""shop: the models and views of the N+1 test app (authors, books, tags, reviews)."""
