"""Run-directory files: checksums verified on load, tampered or foreign files refused unread."""

import json
import pickle
import shutil
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

from langevin_uq import checkpoint as ckpt
from langevin_uq.errors import RunDirError
from langevin_uq.run import fit, load_run

STATE = {"a": jnp.arange(4.0), "b": (jnp.ones((2, 3)), jnp.asarray(7, jnp.int32))}


def like():
    return {"a": jnp.zeros(4), "b": (jnp.zeros((2, 3)), jnp.asarray(0, jnp.int32))}


def test_state_round_trip(tmp_path):
    ckpt.save_state(tmp_path / "c.eqx", STATE)
    back = ckpt.load_state(tmp_path / "c.eqx", like())
    np.testing.assert_array_equal(back["a"], STATE["a"])
    assert int(back["b"][1]) == 7


@pytest.mark.parametrize("damage", ["flip", "truncate", "append", "pickle", "empty", "header"])
def test_damaged_checkpoints_are_refused(tmp_path, damage):
    path = tmp_path / "c.eqx"
    ckpt.save_state(path, STATE)
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[-5] ^= 0x01
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "append":
        raw += b"\x00"
    elif damage == "pickle":
        raw = bytearray(pickle.dumps(STATE["a"].tolist()))
    elif damage == "empty":
        raw = bytearray()
    else:
        raw[len(ckpt.MAGIC) + 3] = ord("z")  # not a hex digit: the digest cannot match
    path.write_bytes(bytes(raw))
    with pytest.raises(RunDirError, match=r"c\.eqx") as info:
        ckpt.load_state(path, like())
    assert "\n" not in str(info.value)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    ckpt.save_state(tmp_path / "c.eqx", {"a": jnp.arange(3.0)})
    with pytest.raises(RunDirError, match="does not fit"):
        ckpt.load_state(tmp_path / "c.eqx", like())


def test_arrays_round_trip_and_tampering(tmp_path):
    path = tmp_path / "s.npz"
    w = np.arange(6.0).reshape(2, 3)
    ckpt.save_samples(path, w, ["a", "b", "c"], np.array([True, False, True]))
    back = ckpt.load_arrays(path)
    np.testing.assert_array_equal(back["w"], w)
    assert sorted(back) == ["names", "stochastic", "w"]
    # Edited values with the old checksum kept: refused.
    edited = {**back, "w": w + 1, ckpt.DIGEST: np.asarray(ckpt.arrays_digest(back))}
    np.savez(path, **edited)
    with pytest.raises(RunDirError, match="checksum mismatch"):
        ckpt.load_arrays(path)
    # Written by another program, without a checksum: refused.
    np.savez(path, w=w)
    with pytest.raises(RunDirError, match="no checksum"):
        ckpt.load_arrays(path)
    # An object array would need pickle: refused, never unpickled.
    np.savez(path, w=np.array([{"x": 1}], dtype=object))
    with pytest.raises(RunDirError, match="cannot be read"):
        ckpt.load_arrays(path)
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RunDirError, match="cannot be read"):
        ckpt.load_arrays(path)


def test_the_digest_covers_names_dtypes_and_shapes():
    a = np.arange(4.0)
    base = ckpt.arrays_digest({"w": a})
    assert ckpt.arrays_digest({"v": a}) != base
    assert ckpt.arrays_digest({"w": a.astype(np.float32)}) != base
    assert ckpt.arrays_digest({"w": a.reshape(2, 2)}) != base
    assert ckpt.arrays_digest({"w": a.copy()}) == base


# --------------------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, ou_data, make_config):
    path = tmp_path_factory.mktemp("ckpt") / "run"
    fit(ou_data, make_config(train={"epochs": 10}), run_dir=path)
    return path


@pytest.mark.parametrize("name", ["checkpoint.eqx", "mle.npz", "samples.npz"])
def test_commands_refuse_a_tampered_run_file(run_dir, tmp_path, cli, data_file, name):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    target = copy / name
    if name.endswith(".npz"):
        with zipfile.ZipFile(target) as z:
            members = {m: z.read(m) for m in z.namelist()}
        with np.load(target) as f:
            first = next(k for k in f.files if k != ckpt.DIGEST)
            np.save(tmp_path / "x.npy", f[first][::-1].copy())
        members[f"{first}.npy"] = (tmp_path / "x.npy").read_bytes()
        with zipfile.ZipFile(target, "w") as z:
            for member, data in members.items():
                z.writestr(member, data)
    else:
        raw = bytearray(target.read_bytes())
        raw[-1] ^= 0xFF
        target.write_bytes(bytes(raw))
    command = (
        ("predict", copy, "--data", data_file, "--out", tmp_path / "p.nc")
        if name == "samples.npz"
        else ("sample", copy, "--n", 3, "--out", tmp_path / "s.npz")
    )
    code, _, err = cli(*command)
    assert code == 2 and "Traceback" not in err, err
    assert name in err and "checksum mismatch" in err, err
    assert not (tmp_path / "p.nc").exists() and not (tmp_path / "s.npz").exists()


def test_a_run_of_another_format_is_refused(run_dir, tmp_path, ou_data):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    meta = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps({**meta, "format": 1}))
    with pytest.raises(RunDirError, match="another version"):
        load_run(copy)
    with pytest.raises(RunDirError, match="another version"):
        fit(ou_data, load_run(run_dir).config, run_dir=copy, resume=True)
