"""rpsloc: unsupervised object localization with representer point selection (ICCV 2023).

Data flows one way: manifest -> features -> representer -> maps -> boxes/metrics -> tables/report.
See docs/architecture.md for the module map and docs/hdf5-layout.md for the files each stage writes.
"""

__version__ = "0.1.0"
