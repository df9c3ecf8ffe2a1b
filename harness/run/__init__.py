"""Running a plan: the driver, the Ray Tune and in-process executors, one trial, its rows and
artefacts, calibration, the ledger, the cluster, the reaper, the console and trackers."""
