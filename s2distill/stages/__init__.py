"""The stages of a run, each a function of explicit inputs writing one fingerprinted artifact
(see s2distill/pipeline.py for the order, s2distill/stages/folder.py for the fingerprints)."""
