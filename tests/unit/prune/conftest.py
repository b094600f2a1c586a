import pytest

from edgetl.models.zoo import load_source
from edgetl.recipe.schema import ModelConfig


@pytest.fixture
def tiny_cnn():
    return load_source(ModelConfig(source="tiny_cnn", pretrained=False), "image", [str(i) for i in range(10)])


@pytest.fixture
def tiny_bert():
    return load_source(ModelConfig(source="tiny_bert", max_length=32), "text", ["neg", "pos"])
