"""Benchmarking docking methods on a set of crystal complexes (e.g. the PDBBind time split).

* :mod:`discodock.benchmark.complexes`: the benchmark set (crystal ligands, cleaned receptor files) and the
  ranked poses of one method (:class:`~discodock.benchmark.complexes.MethodRun`);
* :mod:`discodock.benchmark.run`: docking every complex with
  :class:`~discodock.inference.docking.DockingModel` checkpoints in one batched run, and the whole benchmark
  (:func:`~discodock.benchmark.run.run_benchmark`);
* :mod:`discodock.benchmark.sample_inputs`: the GPU phase of the three-phase route for a machine without
  RDKit (export the featurized set, sample there, import the samples), and its files;
* :mod:`discodock.benchmark.vina`: the AutoDock Vina baseline;
* :mod:`discodock.benchmark.report`: RMSDs, PoseBusters checks and the written report.

Needs the ``benchmark`` extra (``pip install 'discodock[benchmark]'``): PoseBusters, matplotlib, and for
the Vina baseline Vina, Meeko, gemmi and Open Babel.
"""
