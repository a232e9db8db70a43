"""Registry-wide checks: every registered link builds for a cut and honours the whole contract.

``test_every_entry_meets_the_contract`` runs ``check_entry`` (tests/encoders/conftest.py) over
``list_links()``, as timm tests every model: a new codec is covered as soon as it registers.
"""

from __future__ import annotations

import pytest
import torch

from encoders import (
    CODEC_IDS,
    EntropyLink,
    IdentityLink,
    LinkModule,
    build_for_cut,
    build_link,
    estimated_bits,
    link_spec,
    list_links,
    register_link,
    registry,
    unregister_link,
)

EXPECTED = ["factorized", "float16", "hyperprior", "identity", "int4", "int8", "spike", "student"]
STABLE_IDS = {
    "identity": 0,
    "float16": 1,
    "int8": 2,
    "int4": 3,
    "factorized": 16,
    "hyperprior": 17,
    "student": 18,
    "spike": 128,
}
"""Wire ids in payloads and checkpoints on disk: never change one (only add new entries)."""


@pytest.mark.parametrize("name", list_links())
def test_every_entry_meets_the_contract(check_entry, name):
    check_entry(name)


def test_codec_ids_are_stable():
    assert {name: CODEC_IDS[name] for name in STABLE_IDS} == STABLE_IDS
    assert {name: link_spec(name).codec_id for name in STABLE_IDS} == STABLE_IDS


def test_list_links_names_every_link():
    assert set(EXPECTED) <= set(list_links())
    assert list_links() == sorted(list_links())


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown link module 'jpeg'") as err:
        build_link("jpeg")
    for name in EXPECTED:
        assert name in str(err.value)


def test_unknown_plugin_names_the_module_to_import(monkeypatch):
    monkeypatch.setitem(registry.KNOWN_PLUGINS, "radio", "satedge_radio.link")
    with pytest.raises(ValueError, match="registered by the module 'satedge_radio.link'.*import"):
        build_link("radio")


def test_duplicate_name_or_codec_id_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_link("identity", codec_id=0)(type("OtherIdentity", (IdentityLink,), {}))
    with pytest.raises(ValueError, match="already used by 'identity'"):
        register_link("another-identity", codec_id=CODEC_IDS["identity"])(IdentityLink)
    with pytest.raises(ValueError, match="needs a codec id"):
        register_link("no-id-anywhere")


def test_codec_id_ranges_separate_encoders_from_plugins():
    """0..127 for links defined in encoders, 128..255 for other packages: they never collide."""
    core = type("CoreLink", (IdentityLink,), {"__module__": "encoders.fake"})
    with pytest.raises(ValueError, match="defined in encoders take ids in 0..127"):
        register_link("core-with-plugin-id", codec_id=200)(core)
    plugin = type("PluginLink", (IdentityLink,), {"__module__": __name__})
    with pytest.raises(ValueError, match="defined outside encoders take ids in 128..255"):
        register_link("plugin-with-core-id", codec_id=5)(plugin)
    register_link("plugin-link", codec_id=254)(plugin)
    try:
        assert link_spec("plugin-link").module == __name__ and CODEC_IDS["plugin-link"] == 254
    finally:
        unregister_link("plugin-link")
    assert "plugin-link" not in list_links()


def test_codec_ids_are_unique():
    ids = [link_spec(name).codec_id for name in list_links()]
    assert len(set(ids)) == len(ids)


def test_entries_build_for_a_cut_from_shared_options():
    """Each entry takes the shared options it understands (its ``cut_kwargs``), ignoring others."""
    options = {"latent_dim": 5, "num_steps": 3, "granularity": "sample", "hyper_dim": 2}
    assert build_for_cut("spike", 8, 4, options).code_dim == 5  # latent_dim is its code_dim
    assert build_for_cut("spike", 8, 4, options).num_steps == 3
    assert build_for_cut("int8", 8, 4, options).granularity == "sample"
    codec = build_for_cut("hyperprior", 8, 4, options)
    assert (codec.dim, codec.num_tokens, codec.latent_dim, codec.hyper_dim) == (8, 4, 5, 2)
    assert build_for_cut("spike", 8, 4, options, {"code_dim": 7}).code_dim == 7
    with pytest.raises(ValueError, match=r"link 'int8' takes no argument \['zlib'\]; its arguments"):
        build_for_cut("int8", 8, 4, overrides={"zlib": 1})


@pytest.mark.parametrize("name", list_links())
def test_forward_contract(make_link, tokens, name):
    link = make_link(name)
    assert isinstance(link, LinkModule)
    for mode in (link.train, link.eval):
        mode()
        out = link(tokens)
        assert out["y_hat"].shape == tokens.shape
        assert torch.isfinite(out["y_hat"]).all()
        assert isinstance(out["likelihoods"], dict)
        bits = estimated_bits(out["likelihoods"])
        if isinstance(link, EntropyLink):
            assert bits.shape == (tokens.shape[0],) and (bits > 0).all()
        else:
            assert out["likelihoods"] == {} and bits.numel() == 0
    assert link.aux_loss().shape == ()


@pytest.mark.parametrize("name", ["factorized", "hyperprior"])
def test_codec_rejects_wrong_token_shape(make_link, tokens, name):
    link = make_link(name)
    with pytest.raises(ValueError, match=r"expected tokens of shape \[B, 16, 32\]"):
        link(tokens[:, :8])


def test_merge_needs_a_square_grid():
    with pytest.raises(ValueError, match="square grid"):
        build_link("factorized", dim=8, num_tokens=15, merge_tokens=2)
