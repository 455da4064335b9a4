"""CRNN: official layout (parameter count, state-dict names), forward maths, layer chain for IRCT."""
import pytest
import torch
import torch.nn.functional as F

from desed_task.nnet import CRNN

NET_CFG = {"dropout": 0.5, "rnn_layers": 2, "n_in_channel": 1, "nclass": 10, "attention": True,
           "n_RNN_cell": 128, "activation": "glu", "rnn_type": "BGRU", "kernel_size": [3] * 7,
           "padding": [1] * 7, "stride": [1] * 7, "nb_filters": [16, 32, 64, 128, 128, 128, 128],
           "pooling": [[2, 2], [2, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2]], "dropout_recurrent": 0}


def official_state_dict_keys(n_blocks=7, rnn_layers=2):
    """The key order of the official CRNN: cnn (Sequential inside CNN), rnn (GRU inside BidirectionalGRU), heads."""
    keys = []
    for i in range(n_blocks):
        keys += [f"cnn.cnn.conv{i}.weight", f"cnn.cnn.conv{i}.bias"]
        keys += [f"cnn.cnn.batchnorm{i}.{name}" for name in
                 ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
        keys += [f"cnn.cnn.glu{i}.linear.weight", f"cnn.cnn.glu{i}.linear.bias"]
    for layer in range(rnn_layers):
        for suffix in ("", "_reverse"):
            keys += [f"rnn.rnn.{name}_l{layer}{suffix}" for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return keys + ["dense.weight", "dense.bias", "dense_softmax.weight", "dense_softmax.bias"]


def reference_forward(state, x, softmax_dim=-1, pad_mask=None, fuse=None, activation="glu"):
    """Eval-mode forward of the official CRNN written with functional ops on a state dict.

    ``fuse(h)`` maps the (B, T, 128) CNN output before the BiGRU (the official late fusion)."""
    h = x.transpose(1, 2).unsqueeze(1)
    pools = [(2, 2), (2, 2)] + [(1, 2)] * 5
    for i, pool in enumerate(pools):
        conv, bn, glu = (f"cnn.cnn.{name}{i}." for name in ("conv", "batchnorm", activation))
        h = F.conv2d(h, state[conv + "weight"], state[conv + "bias"], padding=1)
        h = F.batch_norm(h, state[bn + "running_mean"], state[bn + "running_var"],
                         state[bn + "weight"], state[bn + "bias"], eps=1e-3)
        lin = F.linear(h.permute(0, 2, 3, 1), state[glu + "linear.weight"], state[glu + "linear.bias"])
        lin = lin.permute(0, 3, 1, 2)
        h = F.avg_pool2d(lin * torch.sigmoid(h) if activation == "glu" else h * torch.sigmoid(lin), pool)
    h = h.squeeze(-1).permute(0, 2, 1)
    if fuse is not None:
        h = fuse(h)
    gru = torch.nn.GRU(128, 128, num_layers=2, bidirectional=True, batch_first=True)
    gru.load_state_dict({k[len("rnn.rnn."):]: v for k, v in state.items() if k.startswith("rnn.rnn.")})
    h = gru(h)[0]
    strong = torch.sigmoid(F.linear(h, state["dense.weight"], state["dense.bias"]))
    sof = F.linear(h, state["dense_softmax.weight"], state["dense_softmax.bias"])
    if pad_mask is not None:
        sof = sof.masked_fill(pad_mask.transpose(1, 2), -1e30)
    sof = torch.softmax(sof, dim=softmax_dim).clamp(1e-7, 1)
    return strong.transpose(1, 2), (strong * sof).sum(1) / sof.sum(1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = CRNN(**NET_CFG)
    for module in net.modules():  # non-trivial running statistics so eval-mode batch norm is exercised
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture(scope="module")
def logmels():
    return torch.randn(3, 128, 64, generator=torch.Generator().manual_seed(1)) * 10


def test_parameter_count_and_official_state_dict_names(model):
    assert sum(p.numel() for p in model.parameters()) == 1_112_420
    assert list(model.state_dict()) == official_state_dict_keys()
    assert sum(p.numel() for p in CRNN().parameters()) == 1_112_420  # defaults equal the contract config


def test_config_keys_are_checked():
    with pytest.raises(TypeError):
        CRNN(**NET_CFG, n_layers_RNN=2)
    with pytest.raises(ValueError):
        CRNN(rnn_type="BLSTM")
    with pytest.raises(ValueError):
        CRNN(attention_softmax_dim="frames")
    small = CRNN(**{**NET_CFG, "rnn_layers": 1, "n_RNN_cell": 32, "nclass": 3})
    gru_names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    assert list(small.state_dict())[-8:-4] == [f"rnn.rnn.{name}_l0_reverse" for name in gru_names]
    assert small.dense.weight.shape == (3, 64)


def test_forward_matches_functional_reference(model, logmels):
    strong, weak = model(logmels)
    assert strong.shape == (3, 10, 16) and weak.shape == (3, 10)
    ref_strong, ref_weak = reference_forward(model.state_dict(), logmels)
    torch.testing.assert_close(strong, ref_strong)
    torch.testing.assert_close(weak, ref_weak)


def test_pad_mask_as_official(model, logmels):
    pad_mask = torch.zeros(3, 1, 16, dtype=torch.bool)
    pad_mask[:, :, 12:] = True
    _, weak = model(logmels, pad_mask=pad_mask)
    torch.testing.assert_close(weak, reference_forward(model.state_dict(), logmels, pad_mask=pad_mask)[1])
    torch.testing.assert_close(model(logmels, pad_mask=pad_mask[:, 0])[1], weak)  # (B, T) masks too


def test_attention_softmax_over_time(model, logmels):
    time_model = CRNN(**NET_CFG, attention_softmax_dim="time").eval()
    time_model.load_state_dict(model.state_dict())
    strong, weak = time_model(logmels)
    h = model.encode(logmels, "l8")
    weights = torch.softmax(model.dense_softmax(h), dim=1)
    torch.testing.assert_close(weights.sum(1), torch.ones(3, 10))
    torch.testing.assert_close(weak, (strong.transpose(1, 2) * weights).sum(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(weak, reference_forward(model.state_dict(), logmels, softmax_dim=1)[1])
    assert not torch.allclose(weak, model(logmels)[1])  # the two conventions really differ
    # over time, padded frames get no weight: the weak output only depends on the valid frames
    pad_mask = torch.zeros(3, 16, dtype=torch.bool)
    pad_mask[:, 12:] = True
    masked_weak = time_model(logmels, pad_mask=pad_mask)[1]
    w = torch.softmax(model.dense_softmax(h[:, :12]), dim=1)
    torch.testing.assert_close(masked_weak, (strong.transpose(1, 2)[:, :12] * w).sum(1), atol=1e-5, rtol=0)


def test_no_attention_weak_is_mean():
    net = CRNN(**{**NET_CFG, "attention": False}).eval()
    assert "dense_softmax.weight" not in net.state_dict()
    strong, weak = net(torch.randn(2, 128, 32))
    torch.testing.assert_close(weak, strong.mean(-1))


def test_placements_shapes(model, logmels):
    assert CRNN.PLACEMENTS == ("input",) + tuple(f"l{i}" for i in range(1, 10)) == model.placements
    shapes = {p: model.encode(logmels, p) for p in CRNN.PLACEMENTS}
    assert shapes["input"] is logmels
    assert shapes["l1"].shape == (3, 16, 32, 64) and shapes["l2"].shape == (3, 32, 16, 32)
    assert shapes["l7"].shape == (3, 128, 16, 1) and shapes["l8"].shape == (3, 16, 256)
    assert isinstance(shapes["l9"], tuple) and shapes["l9"][0].shape == (3, 10, 16)
    with pytest.raises(ValueError):
        model.encode(logmels, "l10")


@pytest.mark.parametrize("placement", CRNN.PLACEMENTS)
def test_encode_then_classify_equals_forward_eval(model, logmels, placement):
    strong, weak = model.classify(model.encode(logmels, placement), placement)
    ref_strong, ref_weak = model(logmels)
    assert torch.allclose(strong, ref_strong) and torch.allclose(weak, ref_weak)


@pytest.mark.parametrize("placement", ["input", "l1", "l4", "l7", "l8", "l9"])
def test_encode_then_classify_equals_forward_train(logmels, placement):
    torch.manual_seed(3)
    net = CRNN(**NET_CFG).train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(10)
    split = net.classify(net.encode(logmels, placement), placement)
    net.load_state_dict(state)  # batch norm running statistics moved; restore them
    torch.manual_seed(10)
    whole = net(logmels)
    assert torch.allclose(split[0], whole[0]) and torch.allclose(split[1], whole[1])
    torch.manual_seed(11)
    assert not torch.allclose(net(logmels)[0], whole[0])  # dropout is active: the seed matters


def test_gradients_reach_first_layer(logmels):
    net = CRNN(**NET_CFG).train()
    strong, weak = net(logmels)
    (strong.mean() + weak.mean()).backward()
    assert net.cnn.cnn.conv0.weight.grad.abs().sum() > 0


# Late fusion of pretrained embeddings (DCASE 2022 / 2023 pretrained baselines, ATST-SED)

FUSION_VARIANTS = {  # name: (config, embedding shape without batch, parameters of one official CRNN copy)
    "2022_ast_frame": ({"embedding_size": 768, "embedding_type": "frame"}, (768, 1214), 5_215_076),
    "2022_panns_frame": ({"embedding_size": 2048, "embedding_type": "frame"}, (2048, 125), 9_147_236),
    "2022_panns_global": ({"embedding_size": 2048, "embedding_type": "global"}, (2048,), 1_407_844),
    "2022_ast_global": ({"embedding_size": 527, "embedding_type": "global"}, (527,), 1_213_156),
    "2023_beats_pool1d": ({"embedding_size": 768, "embedding_type": "frame", "aggregation_type": "pool1d"},
                          (768, 496), 1_227_236),
    "2023_beats_interpolate": ({"embedding_size": 768, "embedding_type": "frame",
                                "aggregation_type": "interpolate"}, (768, 496), 1_227_236),
}


def fusion_keys(aggregation):
    keys = []
    if aggregation == "frame":
        keys += [f"frame_embs_encoder.{name}_l0{suffix}" for suffix in ("", "_reverse")
                 for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    if aggregation in ("frame", "global"):
        keys += ["shrink_emb.0.weight", "shrink_emb.0.bias", "shrink_emb.1.weight", "shrink_emb.1.bias"]
    return keys + ["cat_tf.weight", "cat_tf.bias"]


def official_fusion(net, aggregation, embeddings):
    """The fusion as the official forward writes it (2022 `repeat`, 2023 2-D `interpolate` over (E, T))."""
    state = net.state_dict()

    def shrink(e):
        e = F.linear(e, state["shrink_emb.0.weight"], state["shrink_emb.0.bias"])
        return F.layer_norm(e, (e.shape[-1],), state["shrink_emb.1.weight"], state["shrink_emb.1.bias"])

    def fuse(h):
        if aggregation == "global":
            side = shrink(embeddings).unsqueeze(1).repeat(1, h.shape[1], 1)
        elif aggregation == "frame":
            gru = torch.nn.GRU(embeddings.shape[1], 512, bidirectional=True, batch_first=True)
            gru.load_state_dict({k[len("frame_embs_encoder."):]: v for k, v in state.items()
                                 if k.startswith("frame_embs_encoder.")})
            side = shrink(gru(embeddings.transpose(1, 2))[0][:, -1]).unsqueeze(1).repeat(1, h.shape[1], 1)
        elif aggregation == "pool1d":
            side = F.adaptive_avg_pool1d(embeddings, h.shape[1]).transpose(1, 2)
        else:
            side = F.interpolate(embeddings.unsqueeze(1), size=(embeddings.shape[1], h.shape[1]),
                                 mode="nearest-exact").squeeze(1).transpose(1, 2)
        return F.linear(torch.cat((h, side), -1), state["cat_tf.weight"], state["cat_tf.bias"])

    return fuse


def fusion_model(variant, max_frames=40):
    """An eval-mode fused CRNN and embeddings (frame sequences cut to ``max_frames``: the GRU is slow on CPU)."""
    torch.manual_seed(5)
    config, shape, _ = FUSION_VARIANTS[variant]
    net = CRNN(**NET_CFG, use_embeddings=True, **config).eval()
    shape = shape[:1] + tuple(min(n, max_frames) for n in shape[1:])
    return net, torch.randn(3, *shape, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("variant", FUSION_VARIANTS)
def test_fusion_parameter_counts_and_official_names(variant):
    config, _, n_params = FUSION_VARIANTS[variant]
    net = CRNN(**NET_CFG, use_embeddings=True, **config)
    assert sum(p.numel() for p in net.parameters()) == n_params
    aggregation = config.get("aggregation_type", config["embedding_type"])
    assert list(net.state_dict()) == official_state_dict_keys() + fusion_keys(aggregation)


def test_atst_sed_fusion_with_context_gating():
    """ATST-SED: context-gating CNN (cnn.cnn.cg{i}.linear) + pool1d fusion of 768-d frames, 1,227,236 parameters."""
    net = CRNN(**{**NET_CFG, "activation": "cg"}, use_embeddings=True, embedding_size=768,
               embedding_type="frame", aggregation_type="pool1d").eval()
    assert sum(p.numel() for p in net.parameters()) == 1_227_236
    expected = [k.replace(".glu", ".cg") for k in official_state_dict_keys()] + fusion_keys("pool1d")
    assert list(net.state_dict()) == expected
    x, emb = torch.randn(2, 128, 64), torch.randn(2, 768, 250)
    strong, weak = net(x, embeddings=emb)
    ref = reference_forward(net.state_dict(), x, fuse=official_fusion(net, "pool1d", emb), activation="cg")
    torch.testing.assert_close(strong, ref[0])
    torch.testing.assert_close(weak, ref[1])


@pytest.mark.parametrize("variant", FUSION_VARIANTS)
def test_fusion_forward_matches_official_formula(variant, logmels):
    net, emb = fusion_model(variant, max_frames=496 if "2023" in variant else 40)
    aggregation = net.aggregation_type
    strong, weak = net(logmels, embeddings=emb)
    ref_strong, ref_weak = reference_forward(net.state_dict(), logmels, fuse=official_fusion(net, aggregation, emb))
    torch.testing.assert_close(strong, ref_strong)
    torch.testing.assert_close(weak, ref_weak)
    other = emb.roll(1, 0)  # the embeddings really reach the output
    assert not torch.allclose(net(logmels, embeddings=other)[0], strong)


def test_aggregation_defaults_to_embedding_type_as_in_2022():
    frame = CRNN(use_embeddings=True, embedding_size=768, embedding_type="frame")
    assert frame.aggregation_type == "frame" and hasattr(frame, "frame_embs_encoder")
    assert CRNN(use_embeddings=True, embedding_size=527).aggregation_type == "global"
    with pytest.raises(ValueError, match="fuses global embeddings"):  # the 2023 default on a 2022 frame config
        CRNN(use_embeddings=True, embedding_size=768, embedding_type="frame", aggregation_type="global")
    with pytest.raises(ValueError, match="fuses frame embeddings"):
        CRNN(use_embeddings=True, embedding_type="global", aggregation_type="pool1d")
    with pytest.raises(ValueError, match="aggregation_type"):
        CRNN(use_embeddings=True, embedding_type="frame", aggregation_type="attention")
    with pytest.raises(ValueError, match="embedding_type"):
        CRNN(use_embeddings=True, embedding_type="tokens")
    assert "cat_tf.weight" not in CRNN(embedding_type="frame", aggregation_type="pool1d").state_dict()


def test_embeddings_required_exactly_when_the_chain_crosses_the_fusion(logmels):
    net, emb = fusion_model("2023_beats_pool1d")
    with pytest.raises(ValueError, match="pass embeddings"):
        net(logmels)
    with pytest.raises(ValueError, match="pass embeddings"):
        net.encode(logmels, "l8")
    with pytest.raises(ValueError, match="pass embeddings"):
        net.classify(net.encode(logmels, "l7"), "l7")
    with pytest.raises(ValueError, match="use_embeddings=False"):
        CRNN(**NET_CFG)(logmels, embeddings=emb)
    h8 = net.encode(logmels, "l8", embeddings=emb)
    # after the fusion the embeddings are not needed, and ignored when given
    torch.testing.assert_close(net.classify(h8, "l8")[0], net.classify(h8, "l8", embeddings=emb.flip(0))[0])


@pytest.mark.parametrize("placement", ["input", "l3", "l7", "l8", "l9"])
@pytest.mark.parametrize("variant", ["2022_ast_frame", "2023_beats_pool1d"])
def test_fusion_encode_then_classify_equals_forward(variant, placement, logmels):
    net, emb = fusion_model(variant)
    h = net.encode(logmels, placement, embeddings=emb)
    strong, weak = net.classify(h, placement, embeddings=emb)
    ref_strong, ref_weak = net(logmels, embeddings=emb)
    torch.testing.assert_close(strong, ref_strong)
    torch.testing.assert_close(weak, ref_weak)
    if placement == "l8":
        assert h.shape == (3, 16, 256)


def test_fusion_gradients_reach_embeddings_and_fusion_modules(logmels):
    net, emb = fusion_model("2022_ast_frame")
    emb.requires_grad_()
    strong, weak = net.train()(logmels, embeddings=emb)
    (strong.mean() + weak.mean()).backward()
    assert emb.grad.abs().sum() > 0
    # the reverse GRU half, read at the last step, starts from a zero state there: no gradient to weight_hh
    silent = {"frame_embs_encoder.weight_hh_l0_reverse"}
    for name, param in net.named_parameters():
        if name.split(".")[0] in ("frame_embs_encoder", "shrink_emb", "cat_tf") or name.startswith("cnn.cnn.conv0"):
            assert (param.grad.abs().sum() > 0) != (name in silent), name


# DCASE 2024: 27 classes, BEATs pool1d fusion with dropout, class masks in the frame and attention heads

NET_2024 = {**NET_CFG, "nclass": 27, "n_RNN_cell": 192, "use_embeddings": True, "embedding_size": 768,
            "embedding_type": "frame", "aggregation_type": "pool1d", "fusion_dropout": True,
            "dropstep_recurrent": 0.3, "dropstep_recurrent_len": 16}


def official_2024_state_dict(seed=7):
    """A state dict in the official 2024 checkpoint layout (``sed_student.`` names of the Lightning module),
    with random values of the official shapes."""
    shapes = {f"cnn.cnn.conv{i}.weight": (n, c, 3, 3) for i, (c, n) in
              enumerate(zip([1, 16, 32, 64, 128, 128, 128], [16, 32, 64, 128, 128, 128, 128]))}
    generator = torch.Generator().manual_seed(seed)
    reference = CRNN(**NET_2024).state_dict()
    state = {}
    for key in official_state_dict_keys() + fusion_keys("pool1d"):
        shape = reference[key].shape
        assert key not in shapes or tuple(shape) == shapes[key]
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(10)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.1
    return {f"sed_student.{k}": v for k, v in state.items()} | {f"sed_teacher.{k}": v for k, v in state.items()}


def official_2024_head(h, state, class_mask=None):
    """The official 2024 ``_get_logits_one_head`` on the (B, T, 384) recurrent features."""
    strong = torch.sigmoid(F.linear(h, state["dense.weight"], state["dense.bias"]))
    sof = F.linear(h, state["dense_softmax.weight"], state["dense_softmax.bias"])
    invalid = None if class_mask is None else ~class_mask[:, None].expand_as(strong)
    if invalid is not None:
        sof = sof.masked_fill(invalid, -1e30)
    sof = torch.softmax(sof, dim=-1).clamp(min=1e-7, max=1)
    weak = (strong * sof).sum(1) / sof.sum(1)
    if invalid is not None:
        strong, weak = strong.masked_fill(invalid, 0.0), weak.masked_fill(invalid[:, 0], 0.0)
    return strong.transpose(1, 2), weak


def test_2024_parameter_count_and_strict_official_load():
    from desed_task.nnet.checkpoint import load_state_dict_by_name
    from desed_task.utils.errors import CheckpointKeyMismatch

    net = CRNN(**NET_2024)
    assert sum(p.numel() for p in net.parameters()) == 1_785_094
    assert list(net.state_dict()) == official_state_dict_keys() + fusion_keys("pool1d")
    state = official_2024_state_dict()
    load_state_dict_by_name(net, state, "sed_student.")
    torch.testing.assert_close(net.dense_softmax.weight, state["sed_student.dense_softmax.weight"])
    one_layer = CRNN(**{**NET_2024, "rnn_layers": 1})
    assert sum(p.numel() for p in one_layer.parameters()) == 1_119_238
    with pytest.raises(CheckpointKeyMismatch, match="rnn.rnn.weight_ih_l1"):
        load_state_dict_by_name(one_layer, state, "sed_student.")


def test_2024_outputs_with_and_without_class_masks():
    net = CRNN(**NET_2024)
    state = official_2024_state_dict()
    net.load_state_dict({k[len("sed_student."):]: v for k, v in state.items() if k.startswith("sed_student.")})
    net.eval()
    generator = torch.Generator().manual_seed(3)
    x, emb = torch.randn(4, 128, 64, generator=generator) * 10, torch.randn(4, 768, 200, generator=generator)
    mask = torch.ones(4, 27, dtype=torch.bool)
    mask[:2, 10:] = False  # DESED items
    mask[2:, :10] = False  # MAESTRO items, plus their DESED Speech, Dog and Dishes
    mask[2:, [3, 4, 8]] = True
    h = net.encode(x, "l8", embeddings=emb)
    base = {k[len("sed_student."):]: v for k, v in state.items() if k.startswith("sed_student.")}
    for class_mask in (None, mask):
        strong, weak = net(x, embeddings=emb, class_mask=class_mask)
        ref_strong, ref_weak = official_2024_head(h, base, class_mask)
        torch.testing.assert_close(strong, ref_strong)
        torch.testing.assert_close(weak, ref_weak)
    strong, weak = net(x, embeddings=emb, class_mask=mask)
    assert strong[~mask].abs().max() == 0 and weak[~mask].abs().max() == 0
    free_strong, free_weak = net(x, embeddings=emb)
    torch.testing.assert_close(strong.transpose(1, 2)[mask[:, None].expand(-1, strong.shape[2], -1)],
                               free_strong.transpose(1, 2)[mask[:, None].expand(-1, strong.shape[2], -1)])
    assert not torch.allclose(weak[mask], free_weak[mask])  # attention renormalised over the valid classes


def test_masked_classes_get_no_gradient():
    torch.manual_seed(0)
    net = CRNN(**{**NET_2024, "nb_filters": [4, 8, 8, 8, 8, 8, 8], "n_RNN_cell": 8, "embedding_size": 16})
    x, emb = torch.randn(2, 128, 32), torch.randn(2, 16, 20)
    mask = torch.ones(2, 27, dtype=torch.bool)
    mask[:, 10:] = False
    strong, weak = net(x, embeddings=emb, class_mask=mask)
    (strong.sum() + weak.sum()).backward()
    for head in (net.dense, net.dense_softmax):
        assert head.weight.grad[10:].abs().max() == 0 and head.weight.grad[:10].abs().max() > 0


def test_dropstep_masks_one_span_in_training_only():
    from desed_task.nnet.crnn import time_mask

    torch.manual_seed(1)
    x = torch.ones(64, 156, 3)
    masked = time_mask(x, 16, 0.3)
    zero = (masked[..., 0] == 0)
    lengths = zero.sum(1)
    assert lengths.max() <= 16 and lengths.float().mean() > 4
    for row in zero:  # one contiguous span per item
        idx = row.nonzero().flatten()
        assert len(idx) == 0 or (idx.diff() == 1).all()
    assert time_mask(x[:, :10], 16, 0.3)[..., 0].eq(0).sum(1).max() <= 3  # at most floor(0.3 * T) frames
    net = CRNN(**{**NET_2024, "nb_filters": [4, 8, 8, 8, 8, 8, 8], "n_RNN_cell": 8, "embedding_size": 16}).eval()
    x, emb = torch.randn(2, 128, 32), torch.randn(2, 16, 20)
    torch.testing.assert_close(net(x, embeddings=emb)[0], net(x, embeddings=emb)[0])
