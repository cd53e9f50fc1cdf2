"""Recommender models: biased MF (explicit ratings), BPR (implicit), a two-tower model over item metadata (cold
start), popularity and item-kNN baselines, plus the FAISS candidate index, MMR re-ranking and fold-in.

Every vector model maps users and items into one inner-product space (``user_vectors`` / ``item_vectors``), so
one FAISS index serves them all; ``fold_in`` gives a user vector from recent events without retraining.
"""
