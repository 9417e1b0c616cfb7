"""Inference, one module per stage: ``video`` → ``faces`` → members (:mod:`deepfake_kernel.detectors`) →
``ensemble`` → ``submission``; ``budget`` paces a run, ``watchdog`` abandons a hung stage, ``detector`` ties the
stages together for one video, ``runner`` runs a folder of them."""
