from edgetl.recipe.load import load_recipe, recipe_json_schema
from edgetl.recipe.schema import DataConfig, ModelConfig, StageConfig, StrictModel, Targets

__all__ = ["load_recipe", "recipe_json_schema", "DataConfig", "ModelConfig", "StageConfig", "StrictModel", "Targets"]
