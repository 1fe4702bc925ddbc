"""`confidant bench`: measured speed of ingestion, retrieval and generation."""
