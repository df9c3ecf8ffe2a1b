"""`genbench run --log`: each trial's curves, final metrics and config reach TensorBoard and
MLflow, read back here with their own readers (TensorBoard's EventAccumulator, MLflow's client
on its SQLite store)."""

import pytest

from genbench.harness.cli import main

STUDY = """
from genbench import Arm, Scale, Study
STUDY = Study(name="tracked", data="mnist5k", metrics=("fid_domain",), seeds=(0,),
              arms=(Arm("mean", "dummy", sample_grid={"noise": [0.1, 0.5]}),),
              scales={"smoke": Scale(budget_steps=6, n_samples=8, log_every=2)})
"""


@pytest.mark.e2e
def test_trials_reach_tensorboard_and_mlflow(tmp_path, capsys, domain_extractor):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    study = tmp_path / "tracked.py"
    study.write_text(STUDY)
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--in-process", "--no-report",
                 "--log", "tensorboard", "--log", "mlflow"]) == 0
    assert "--log" not in capsys.readouterr().out  # nothing went wrong to say
    # TensorBoard: one run per trial, the loss at every logged step, a final value per setting
    (run_dir,) = (out / "tensorboard").iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("curves/loss")] == [2, 4, 6]
    assert {"final/fid_domain/noise=0.1", "final/fid_domain/noise=0.5", "final/n_params"} <= set(tags)
    low, high = (events.Scalars(f"final/fid_domain/noise={n}")[0].value for n in ("0.1", "0.5"))
    assert low < high
    # MLflow: the study's experiment, one run named after the trial, its tags and params
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "mean s0" and run.info.status == "FINISHED"
    assert run.data.tags["arm"] == "mean" and run.data.tags["git_sha"] and run.data.tags["seed"] == "0"
    assert run.data.params["config.batch_size"] and run.data.params["seed"] == "0"
    history = client.get_metric_history(run.info.run_id, "curves/loss")
    assert [m.step for m in history] == [2, 4, 6]
    assert run.data.metrics["fid_domain/noise-0.1"] == pytest.approx(low, rel=1e-5)


def test_an_unknown_or_missing_tracker_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(["run", "quickstart", "--out", str(out), "--log", "tensorbord"]) == 2
    err = capsys.readouterr().err
    assert "unknown tracker 'tensorbord' for --log (did you mean 'tensorboard'?)" in err
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert main(["run", "quickstart", "--out", str(out), "--log", "mlflow"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'genbench[mlflow]'" in err
    assert not out.exists()
