"""The Kaggle utility dataset (``python -m deepfake_kernel.kaggle``): ``resolver`` (which wheels), ``notebook``
(the example notebook from its template file), ``offline_venv`` and ``verify`` (the folder checked as Kaggle
uses it), ``dataset`` (the folder built); ``common`` holds what they share."""
