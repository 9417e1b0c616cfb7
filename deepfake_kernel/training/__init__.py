"""Training: ``data`` (labelled videos and the face-crop cache), ``augment`` and ``landmarks`` (self-blended
fakes), ``batches`` (what an epoch sees), ``recipes`` (one table per preset), ``engine`` (the one training core),
``trainers`` and ``sequence`` (member trainers on that core), ``run`` (a whole ``train`` run)."""
