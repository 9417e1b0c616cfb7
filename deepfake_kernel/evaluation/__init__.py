"""Measuring the detector where it matters, on data families it never saw: the cross-family protocol, its
tables, and the calibration fitted on its out-of-family predictions."""
