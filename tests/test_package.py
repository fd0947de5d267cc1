import headwater


def test_public_names_are_pinned():
    assert headwater.__all__ == ["__version__"]
    assert headwater.__version__
