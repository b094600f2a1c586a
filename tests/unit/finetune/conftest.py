import pytest

from edgetl.data.datasets import load_data
from edgetl.models.zoo import load_source
from edgetl.recipe.schema import DataConfig, ModelConfig


@pytest.fixture(scope="session")
def fmnist():
    return load_data(DataConfig(name="fashion_mnist", train_limit=128, eval_limit=64))


@pytest.fixture(scope="session")
def rt():
    return load_data(DataConfig(name="rotten_tomatoes", train_limit=96, eval_limit=48))


@pytest.fixture
def tiny_cnn(fmnist):
    return load_source(ModelConfig(source="tiny_cnn", input_size=32), "image", fmnist.label_names)


@pytest.fixture
def tiny_bert(rt):
    return load_source(ModelConfig(source="tiny_bert", max_length=32), "text", rt.label_names)


@pytest.fixture
def models(tiny_cnn, tiny_bert, fmnist, rt):
    return {"tiny_cnn": (tiny_cnn, fmnist), "tiny_bert": (tiny_bert, rt)}
