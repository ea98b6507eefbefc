"""Offline resources robench needs (WordNet, stopwords) and where they live."""
