"""Sweeps through Hydra's launchers: submitit (local here, SLURM on a cluster) and joblib, with
the grid and the Optuna sweeper. Each job stays one MLflow run tagged with its sweep."""

from __future__ import annotations

import mlflow
import pytest
from test_train import run_cli, tiny_sweep_args

from nerlab.training.config import compose


def _runs(tmp_path, experiment: str) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlruns.db")
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


@pytest.mark.slow  # the default suite keeps the faster launcher/DDP tests
def test_a_grid_on_submitit_local_gives_one_finished_run_per_job(tmp_path, tiny_corpus):
    result = run_cli(
        "--multirun",
        "hydra/launcher=submitit_local",
        "seed=1,2",
        "logger.mlflow.experiment_name=submitit",
        *tiny_sweep_args(tmp_path, tiny_corpus),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    runs = _runs(tmp_path, "submitit")
    assert sorted(r.data.params["seed"] for r in runs) == ["1", "2"]
    assert all(r.info.status == "FINISHED" and "test_f1" in r.data.metrics for r in runs)
    assert len({r.data.tags["sweep_id"] for r in runs}) == 1
    assert {r.data.tags["sweep_job"] for r in runs} == {"0", "1"}
    sweep = tmp_path / "outputs" / "train" / "multiruns"
    assert len(list(sweep.glob("*/.submitit/*/*_result.pkl"))) == 2  # run by submitit


def test_optuna_runs_its_trials_as_parallel_joblib_jobs(tmp_path, tiny_corpus):
    result = run_cli(
        "hparams_search=optuna",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "logger.mlflow.experiment_name=optuna-joblib",
        *tiny_sweep_args(tmp_path, tiny_corpus),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Best value" in result.stdout + result.stderr
    runs = _runs(tmp_path, "optuna-joblib")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    lrs = {float(r.data.params["optimizer.lr"]) for r in runs}
    assert len(lrs) == 2 and all(0.0005 <= lr <= 0.01 for lr in lrs)  # two sampled trials
    assert len({r.data.tags["sweep_id"] for r in runs}) == 1
    best = sorted(tmp_path.glob("outputs/train/multiruns/*/optimization_results.yaml"))
    assert best and "best_value" in best[-1].read_text()


def test_the_slurm_launcher_composes_with_cluster_settings(tmp_path):
    from hydra.core.hydra_config import HydraConfig

    compose(
        [
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.nodes=2",
            "hydra.launcher.tasks_per_node=4",
            "hydra.launcher.gpus_per_node=4",
            "trainer=ddp",
            "trainer.num_nodes=2",
            "trainer.devices=4",
            f"paths.root_dir={tmp_path}",
        ]
    )
    launcher = HydraConfig.get().launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.nodes, launcher.gpus_per_node) == ("gpu", 2, 4)
