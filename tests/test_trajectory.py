"""Trajectory records: stacking, saving and loading, and clear errors on bad files."""

import json

import pytest
import torch

from mmdiff_lab.pipelines.trajectory import Trajectory


def _trajectory(steps=4):
    traj = Trajectory({"prompt": "a red circle", "seed": 3})
    for i, t in enumerate(range(999, 0, -999 // steps)[:steps]):
        x = torch.full((1, 3, 8, 8), float(i))
        traj.append(t, x, x0_pred=x * 2, eps_pred=-x, guidance=x + 0.5)
    return traj


def test_stack_and_access():
    traj = _trajectory()
    assert len(traj) == 4 and traj.timesteps[0] == 999
    assert traj.stack("x_t").shape == (4, 1, 3, 8, 8)
    assert torch.equal(traj.stack("guidance")[2], torch.full((1, 3, 8, 8), 2.5))
    with pytest.raises(KeyError, match="attention"):
        traj.stack("attention")


def test_append_detaches_and_copies():
    x = torch.ones(1, 3, 2, 2, requires_grad=True)
    traj = Trajectory()
    traj.append(5, x * 1)
    assert not traj[0].x_t.requires_grad


def test_save_load_roundtrip(tmp_path):
    traj = _trajectory()
    traj.save(tmp_path / "run")
    again = Trajectory.load(tmp_path / "run")
    assert again.meta == traj.meta and again.timesteps == traj.timesteps
    for name in ("x_t", "x0_pred", "eps_pred", "guidance"):
        assert torch.equal(again.stack(name), traj.stack(name))


def test_partial_fields_roundtrip(tmp_path):
    traj = Trajectory()
    traj.append(10, torch.zeros(2))
    traj.append(5, torch.ones(2))
    traj.save(tmp_path)
    again = Trajectory.load(tmp_path)
    assert again[1].x0_pred is None and torch.equal(again[1].x_t, torch.ones(2))


def test_inconsistent_fields_are_refused(tmp_path):
    traj = Trajectory()
    traj.append(10, torch.zeros(2), x0_pred=torch.zeros(2))
    traj.append(5, torch.ones(2))
    with pytest.raises(ValueError, match="t=5"):
        traj.save(tmp_path)


def test_corrupt_files_are_named(tmp_path):
    _trajectory().save(tmp_path)
    (tmp_path / "trajectory.safetensors").write_bytes(b"\x00\x01 definitely not safetensors")
    with pytest.raises(ValueError, match="trajectory.safetensors: corrupt"):
        Trajectory.load(tmp_path)
    (tmp_path / "trajectory.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="trajectory.json: not a trajectory"):
        Trajectory.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no saved trajectory"):
        Trajectory.load(tmp_path / "nowhere")


def test_step_count_mismatch_is_refused(tmp_path):
    _trajectory().save(tmp_path)
    info = json.loads((tmp_path / "trajectory.json").read_text())
    info["timesteps"] = info["timesteps"][:2]
    (tmp_path / "trajectory.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="does not match"):
        Trajectory.load(tmp_path)
