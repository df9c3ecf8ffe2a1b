"""`genbench run --log`: each trial's curves, final metrics and config reach TensorBoard, MLflow
and W&B, read back here with their own readers (TensorBoard's EventAccumulator, MLflow's client
on its SQLite store, W&B's protobuf records from its offline run file)."""

import json
import struct

import pytest

from genbench.harness.cli import main

STUDY = """
from genbench import Arm, Scale, Study
STUDY = Study(name="tracked", data="mnist5k", metrics=("fid_domain",), seeds=(0,),
              arms=(Arm("mean", "dummy", sample_grid={"noise": [0.1, 0.5]}),),
              scales={"smoke": Scale(budget_steps=6, n_samples=8, log_every=2)})
"""


@pytest.mark.e2e
def test_trials_reach_tensorboard_mlflow_and_wandb(tmp_path, capsys, domain_extractor):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    study = tmp_path / "tracked.py"
    study.write_text(STUDY)
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--in-process", "--no-report",
                 "--log", "tensorboard", "--log", "mlflow", "--log", "wandb"]) == 0
    printed = capsys.readouterr().out
    assert "--log" not in printed  # nothing went wrong to say
    assert f"`wandb sync {out / 'wandb'}/offline-run-*` uploads them" in printed
    # TensorBoard: one run per trial (the real-data floor's too), the loss at every logged step,
    # a final value per setting
    runs = sorted(p.name.split("-")[0] for p in (out / "tensorboard").iterdir())
    assert runs == ["mean", "real"]
    (run_dir,) = (out / "tensorboard").glob("mean*")
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
    (run,) = [r for r in client.search_runs([experiment.experiment_id])
              if r.info.run_name != "real s0"]
    assert run.info.run_name == "mean s0" and run.info.status == "FINISHED"
    assert run.data.tags["arm"] == "mean" and run.data.tags["git_sha"] and run.data.tags["seed"] == "0"
    assert run.data.params["config.batch_size"] and run.data.params["seed"] == "0"
    history = client.get_metric_history(run.info.run_id, "curves/loss")
    assert [m.step for m in history] == [2, 4, 6]
    assert run.data.metrics["fid_domain/noise-0.1"] == pytest.approx(low, rel=1e-5)
    # W&B: one offline run per trial under OUT/wandb, its history, summary, config and tags
    files = sorted((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2
    (records,) = [rs for rs in map(wandb_records, files)
                  if any(r.run.display_name == "mean s0" for r in rs
                         if r.WhichOneof("record_type") == "run")]
    (info,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert info.display_name == "mean s0" and info.project == "tracked" and "arm:mean" in info.tags
    config = {i.key: json.loads(i.value_json) for i in info.config.update}
    assert config["arm"] == "mean" and config["seed"] == "0" and config["config"]["batch_size"]
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    assert [h["_step"] for h in history if "curves/loss" in h] == [2, 4, 6]
    summary = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
               for r in records if r.WhichOneof("record_type") == "summary" for i in r.summary.update}
    assert summary["final/fid_domain/noise=0.1"] == pytest.approx(low, rel=1e-5)


def wandb_records(path):
    """The protobuf records of a W&B run file: LevelDB's log format (32 KiB blocks, records
    `crc32 | length | type` split across blocks) after a 7-byte `:W&B` header."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    out, part, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        part += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            out.append(record)
            part = b""
    return out


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
