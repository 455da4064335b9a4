"""TorchScaler: the baseline's instance and dataset normalisations."""
import pytest
import torch

from desed_task.features.scaler import TorchScaler


@pytest.fixture
def feats():
    return torch.randn(4, 8, 20, generator=torch.Generator().manual_seed(0)) * 3 + 5


def test_instance_minmax_maps_each_item_to_unit_range(feats):
    out = TorchScaler("instance", "minmax", dims=(1, 2))(feats)
    flat = out.flatten(1)
    torch.testing.assert_close(flat.min(1).values, torch.zeros(4))
    torch.testing.assert_close(flat.max(1).values, torch.ones(4))
    item = feats[2]
    torch.testing.assert_close(out[2], (item - item.min()) / (item.max() - item.min() + 1e-8))


def test_instance_standard_and_mean(feats):
    out = TorchScaler("instance", "standard")(feats)
    torch.testing.assert_close(out.mean((1, 2)), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std((1, 2)), torch.ones(4))
    centred = TorchScaler("instance", "mean", dims=(2,))(feats)
    torch.testing.assert_close(centred, feats - feats.mean(2, keepdim=True))


def test_dataset_fit_matches_baseline_formula_and_round_trips(feats):
    batches = [(feats[:2], "ids"), (feats[2:3], "ids")]
    scaler = TorchScaler("dataset", "standard")
    with pytest.raises(RuntimeError):
        scaler(feats)
    scaler.fit(batches)
    # the mean of per-batch means of per-item means (batches weigh equally, as in the baseline)
    expected_mean = (feats[:2].mean() + feats[2].mean()) / 2
    expected_sq = ((feats[:2] ** 2).mean() + (feats[2] ** 2).mean()) / 2
    assert scaler.mean.shape == (1, 1, 1)
    torch.testing.assert_close(scaler.mean.squeeze(), expected_mean)
    torch.testing.assert_close(scaler.mean_squared.squeeze(), expected_sq)
    std = torch.sqrt(expected_sq - expected_mean**2)
    torch.testing.assert_close(scaler(feats), (feats - expected_mean) / (std + 1e-8))

    restored = TorchScaler("dataset", "standard")
    restored.load_state_dict(scaler.state_dict())
    torch.testing.assert_close(restored(feats), scaler(feats))
    mean_only = TorchScaler("dataset", "mean")
    mean_only.fit(batches, transform_func=lambda batch: batch[0])
    torch.testing.assert_close(mean_only(feats), feats - expected_mean)


def test_per_band_dataset_statistics(feats):
    scaler = TorchScaler("dataset", "standard", dims=(0, 2))
    scaler.fit([feats], transform_func=lambda batch: batch)
    assert scaler.mean.shape == (1, 8, 1)
    torch.testing.assert_close(scaler.mean[0, :, 0], feats.mean((0, 2)))


def test_instance_scaler_has_no_state_and_rejects_bad_options():
    assert TorchScaler().state_dict() == {}
    with pytest.raises(ValueError):
        TorchScaler("dataset", "minmax")
    with pytest.raises(ValueError):
        TorchScaler("batch", "standard")
    with pytest.raises(RuntimeError):
        TorchScaler().fit([])
