"""Pose geometry of the diffusion: noise schedules, SO(3) and torus kernels, batched pose updates.

* :mod:`~discodock.geometry.schedules` -- σ(t) and g(t) of translation, rotation and torsions, time sampling;
* :mod:`~discodock.geometry.so3` -- rotation conversions, uniform rotations, IGSO(3) sample, score, norm;
* :mod:`~discodock.geometry.torus` -- wrapped normal sampling, score and normaliser of torsion changes;
* :mod:`~discodock.geometry.pose` -- :class:`~discodock.geometry.pose.TorsionIndex`, torsion twists,
  Kabsch alignment, full pose updates and the t = 1 prior, batched over ligands on the device.
"""
